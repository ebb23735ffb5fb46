//! The promotion chain: the order tenants are promoted in (`[promotion]
//! chain` of `ferry.toml`, e.g. dev → staging → prod), and whether one
//! promotion goes along it.
//!
//! The rule: with a chain, a promotion that involves a tenant of the chain
//! goes one step forward along it, from a tenant to the one right after it.
//! Going backward, skipping a tenant, or promoting between a tenant of the
//! chain and one outside it is *against the chain*: refused, unless the
//! caller asks for it, and then recorded as such. Promotions between
//! tenants that are not in the chain, and promotions with no chain, are not
//! governed by it. A tenant promoted into itself (another store) is not a
//! move along the chain either.

use serde::Serialize;

/// The chain of a repo, validated: tenants in promotion order, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    tenants: Vec<String>,
}

/// Why a chain is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A tenant is listed twice.
    #[error("tenant `{tenant}` appears more than once in the promotion chain")]
    Repeated {
        /// The tenant.
        tenant: String,
    },
}

/// How a promotion departs from the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "tenants")]
pub enum Departure {
    /// The target comes before the source.
    Backward,
    /// The target comes after the source, past these tenants in between.
    Skips(Vec<String>),
    /// One of the two tenants (named) is not in the chain.
    OffChain(Vec<String>),
}

/// A promotion against the chain: what it departs from, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgainstChain {
    /// The chain, in order.
    pub chain: Vec<String>,
    /// The source tenant.
    pub from: String,
    /// The target tenant.
    pub to: String,
    /// How it departs from the chain.
    pub departure: Departure,
}

/// What the chain says of a promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainMove {
    /// No chain, or neither tenant is in it (or a tenant into itself).
    Unchained,
    /// One step forward along the chain.
    Forward,
    /// Against the chain.
    Against(AgainstChain),
}

impl Chain {
    /// A chain of `tenants`, in promotion order; empty means no chain.
    pub fn new(tenants: Vec<String>) -> Result<Chain, ChainError> {
        for (i, t) in tenants.iter().enumerate() {
            if tenants[..i].contains(t) {
                return Err(ChainError::Repeated { tenant: t.clone() });
            }
        }
        Ok(Chain { tenants })
    }

    /// The tenants, in order.
    pub fn tenants(&self) -> &[String] {
        &self.tenants
    }

    /// Whether a promotion from `from` to `to` goes along the chain.
    pub fn judge(&self, from: &str, to: &str) -> ChainMove {
        let at = |t: &str| self.tenants.iter().position(|x| x == t);
        let against = |departure| {
            ChainMove::Against(AgainstChain {
                chain: self.tenants.clone(),
                from: from.to_string(),
                to: to.to_string(),
                departure,
            })
        };
        if from == to {
            return ChainMove::Unchained;
        }
        match (at(from), at(to)) {
            (None, None) => ChainMove::Unchained,
            (Some(f), Some(t)) if t == f + 1 => ChainMove::Forward,
            (Some(f), Some(t)) if t < f => against(Departure::Backward),
            (Some(f), Some(t)) => against(Departure::Skips(self.tenants[f + 1..t].to_vec())),
            (f, _) => {
                let outside = if f.is_none() { from } else { to };
                against(Departure::OffChain(vec![outside.to_string()]))
            }
        }
    }
}

/// Tenants as code: `` `a`, `b` ``.
fn quoted(tenants: &[String]) -> String {
    tenants
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl AgainstChain {
    /// The chain as people read it: `acme-dev → acme-staging → acme-prod`.
    pub fn chain_text(&self) -> String {
        self.chain.join(" → ")
    }

    /// How the promotion departs from the chain, in words.
    pub fn departure_text(&self) -> String {
        match &self.departure {
            Departure::Backward => format!("`{}` comes before `{}`", self.to, self.from),
            Departure::Skips(between) => format!("it skips {}", quoted(between)),
            Departure::OffChain(outside) => format!("{} is not in the chain", quoted(outside)),
        }
    }

    /// The way along the chain instead, for a `hint:` line.
    pub fn forward_instead(&self) -> String {
        let at = |t: &str| self.chain.iter().position(|x| x == t);
        match (&self.departure, at(&self.to)) {
            (Departure::Skips(between), _) => {
                let mut steps = vec![self.from.as_str()];
                steps.extend(between.iter().map(String::as_str));
                steps.push(self.to.as_str());
                format!("promote one step at a time: {}", steps.join(" → "))
            }
            (Departure::Backward, Some(0)) => format!(
                "`{}` starts the chain: nothing is promoted into it; change it there directly",
                self.to
            ),
            (Departure::Backward, Some(t)) => format!(
                "`{}` is promoted from `{}` only",
                self.to,
                self.chain[t - 1]
            ),
            (Departure::Backward, None) | (Departure::OffChain(_), _) => {
                "add the tenant to `[promotion] chain` in ferry.toml where it belongs".to_string()
            }
        }
    }

    /// The line a promotion against the chain carries in its plan and report.
    pub fn record_line(&self) -> String {
        format!(
            "promoted against the chain {} from `{}` to `{}`: {}",
            self.chain_text(),
            self.from,
            self.to,
            self.departure_text()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Chain {
        Chain::new(vec!["dev".into(), "staging".into(), "prod".into()]).unwrap()
    }

    fn departure(m: ChainMove) -> Departure {
        match m {
            ChainMove::Against(a) => a.departure,
            other => panic!("not against the chain: {other:?}"),
        }
    }

    #[test]
    fn one_step_forward_goes_along_the_chain() {
        assert_eq!(chain().judge("dev", "staging"), ChainMove::Forward);
        assert_eq!(chain().judge("staging", "prod"), ChainMove::Forward);
    }

    #[test]
    fn backward_skipping_and_off_chain_are_against_it() {
        assert_eq!(
            departure(chain().judge("prod", "staging")),
            Departure::Backward
        );
        assert_eq!(
            departure(chain().judge("dev", "prod")),
            Departure::Skips(vec!["staging".into()])
        );
        assert_eq!(
            departure(chain().judge("scratch", "prod")),
            Departure::OffChain(vec!["scratch".into()])
        );
        assert_eq!(
            departure(chain().judge("prod", "scratch")),
            Departure::OffChain(vec!["scratch".into()])
        );
    }

    #[test]
    fn no_chain_and_tenants_outside_it_are_not_governed() {
        assert_eq!(Chain::default().judge("prod", "dev"), ChainMove::Unchained);
        assert_eq!(chain().judge("a", "b"), ChainMove::Unchained);
        assert_eq!(chain().judge("prod", "prod"), ChainMove::Unchained);
    }

    #[test]
    fn a_repeated_tenant_is_not_a_chain() {
        let e = Chain::new(vec!["dev".into(), "prod".into(), "dev".into()]).unwrap_err();
        assert_eq!(
            e,
            ChainError::Repeated {
                tenant: "dev".into()
            }
        );
    }

    #[test]
    fn hints_point_forward() {
        let ChainMove::Against(a) = chain().judge("dev", "prod") else {
            panic!()
        };
        assert_eq!(
            a.forward_instead(),
            "promote one step at a time: dev → staging → prod"
        );
        assert_eq!(a.departure_text(), "it skips `staging`");
        let ChainMove::Against(b) = chain().judge("prod", "staging") else {
            panic!()
        };
        assert_eq!(b.forward_instead(), "`staging` is promoted from `dev` only");
        assert!(b.record_line().contains("dev → staging → prod"));
        let ChainMove::Against(c) = chain().judge("staging", "dev") else {
            panic!()
        };
        assert!(c.forward_instead().contains("starts the chain"));
    }
}
