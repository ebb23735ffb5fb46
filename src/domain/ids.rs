//! Deterministic identifiers: resource IDs, promoted IDs and change IDs.
//!
//! Every ID ferry makes is a blake3 hash of the facts that identify the
//! thing, rendered in lower-case Crockford base32 behind a kind prefix
//! (`agt_5w2k9d7q3m1x8c4v`). The same inputs always give the same ID, which
//! is what makes applying a tree twice, or promoting twice, an update rather
//! than a duplicate.

use crate::domain::model::Kind;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Render the first 16 base32 digits (80 bits) of a hash.
fn base32_16(hash: &blake3::Hash) -> String {
    let bytes = hash.as_bytes();
    let mut acc: u128 = 0;
    for b in &bytes[..10] {
        acc = (acc << 8) | u128::from(*b);
    }
    let mut out = String::with_capacity(16);
    for i in (0..16).rev() {
        let idx = ((acc >> (i * 5)) & 31) as usize;
        out.push(char::from(ALPHABET[idx]));
    }
    out
}

fn hash_parts(domain: &str, parts: &[&str]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(domain.as_bytes());
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()
}

/// The ID of a resource written without one: derived from tenant, kind and name.
pub fn derived_id(tenant: &str, kind: Kind, name: &str) -> String {
    let h = hash_parts("ferry/id/derived/v1", &[tenant, kind.name(), name]);
    format!("{}_{}", kind.id_prefix(), base32_16(&h))
}

/// The ID a promoted resource gets in the target tenant.
///
/// It depends on the origin tenant (the first tenant of the resource's
/// lineage), the target tenant and the origin ID, so that dev→staging→prod
/// and dev→prod give the same prod ID.
pub fn promoted_id(
    origin_tenant: &str,
    target_tenant: &str,
    origin_id: &str,
    kind: Kind,
) -> String {
    let h = hash_parts(
        "ferry/id/promoted/v1",
        &[origin_tenant, target_tenant, origin_id],
    );
    format!("{}_{}", kind.id_prefix(), base32_16(&h))
}

/// The ID a resource gets when imported with the `create` strategy.
pub fn imported_id(target_tenant: &str, origin_id: &str, salt: &str, kind: Kind) -> String {
    let h = hash_parts("ferry/id/imported/v1", &[target_tenant, origin_id, salt]);
    format!("{}_{}", kind.id_prefix(), base32_16(&h))
}

/// A change-track ID for a publish: `chg_` and 16 base32 digits.
pub fn change_id(tenant: &str, number: u64, content: &str) -> String {
    let h = hash_parts(
        "ferry/id/change/v1",
        &[tenant, &number.to_string(), content],
    );
    format!("chg_{}", base32_16(&h))
}

/// The hex blake3 hash of some bytes, with the `blake3:` prefix documents use.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_id("acme-dev", Kind::Agent, "support-bot");
        assert_eq!(a, derived_id("acme-dev", Kind::Agent, "support-bot"));
        assert!(a.starts_with("agt_") && a.len() == 20);
        assert_ne!(a, derived_id("acme-prod", Kind::Agent, "support-bot"));
        assert_ne!(a, derived_id("acme-dev", Kind::Tool, "support-bot"));
    }
}
