//! Structural matching: pairing a source agent's resources with a target's.
//!
//! Used by the `upgrade` strategy of ZIP import and by live sync. Pure data
//! in, pairs out: the source side is a model in tree form (references by
//! name), the target side is stored-form resources (references by ID).
//! The agent pairs with the chosen target agent; workflows pair by position
//! in the paired agents' workflow lists (extra source workflows are new,
//! extra target workflows are reported as removed); sub-agents pair by name
//! among the target agent's sub-agents; every other resource pairs by kind
//! and name. Within a pair, workflow steps pair by type URI and occurrence,
//! snippets by name (see [`pair_steps`], [`pair_snippets`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::domain::model::{Kind, Resource, Snippet, TenantModel, WorkflowStep};

/// A target resource that the source no longer has, reported (never deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Kind.
    pub kind: Kind,
    /// Local ID.
    pub local_id: String,
    /// Local name.
    pub name: String,
    /// The paired agent whose list it dropped out of.
    pub parent: String,
}

/// The outcome of matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matching {
    /// Source (kind, name) → target ID.
    pub pairs: BTreeMap<(Kind, String), String>,
    /// Target workflows the source agent no longer lists.
    pub removed: Vec<Removed>,
}

/// Why a target agent could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChoice {
    /// Exactly this agent.
    One(String),
    /// None came from the source agent.
    None,
    /// More than one did (a conflict): their IDs.
    Many(Vec<String>),
}

/// The local agent whose origin is `source_agent_id`: by `metadata.originId`,
/// `metadata.syncedFrom.id`, or a sync record (`recorded` maps local ID → origin ID).
pub fn find_target_agent(
    source_agent_id: &str,
    target: &[Resource],
    recorded: &HashMap<String, String>,
) -> TargetChoice {
    let mut found: Vec<String> = target
        .iter()
        .filter(|r| r.kind() == Kind::Agent)
        .filter(|r| {
            let id = r.id().unwrap_or_default();
            r.metadata.origin_id.as_deref() == Some(source_agent_id)
                || r.metadata
                    .synced_from
                    .as_ref()
                    .is_some_and(|s| s.id == source_agent_id)
                || recorded.get(id).is_some_and(|o| o == source_agent_id)
        })
        .filter_map(|r| r.id().map(str::to_string))
        .collect();
    found.sort();
    found.dedup();
    match found.len() {
        0 => TargetChoice::None,
        1 => TargetChoice::One(found.remove(0)),
        _ => TargetChoice::Many(found),
    }
}

/// Match `source` (tree form) onto `target` (stored form), rooted at the
/// source agent `source_root` (a name) and the target agent `target_root` (an ID).
pub fn match_structure(
    source: &TenantModel,
    source_root: Option<&str>,
    target: &[Resource],
    target_root: Option<&str>,
) -> Matching {
    let by_id: HashMap<&str, &Resource> = target
        .iter()
        .filter_map(|r| r.id().map(|id| (id, r)))
        .collect();
    let mut by_name: HashMap<(Kind, &str), &str> = HashMap::new();
    for r in target {
        if let Some(id) = r.id() {
            by_name.insert((r.kind(), r.name()), id);
        }
    }
    let mut m = Matching::default();
    let mut claimed: HashSet<String> = HashSet::new();
    let mut positional: HashSet<String> = HashSet::new();
    for r in source.iter() {
        if r.kind() == Kind::Agent {
            positional.extend(r.refs_to(Kind::Workflow));
        }
    }
    let mut queue: Vec<(String, String)> = Vec::new();
    if let (Some(s), Some(t)) = (source_root, target_root) {
        if source.get(Kind::Agent, s).is_some() && by_id.contains_key(t) {
            m.pairs.insert((Kind::Agent, s.to_string()), t.to_string());
            claimed.insert(t.to_string());
            queue.push((s.to_string(), t.to_string()));
        }
    }
    while let Some((s, t)) = queue.pop() {
        let (Some(sa), Some(ta)) = (source.get(Kind::Agent, &s), by_id.get(t.as_str())) else {
            continue;
        };
        if ta.kind() != Kind::Agent {
            continue;
        }
        let source_workflows = sa.refs_to(Kind::Workflow);
        for (i, tw) in ta.refs_to(Kind::Workflow).iter().enumerate() {
            match source_workflows.get(i) {
                Some(sw) => {
                    let key = (Kind::Workflow, sw.clone());
                    if !m.pairs.contains_key(&key)
                        && !claimed.contains(tw)
                        && by_id.contains_key(tw.as_str())
                    {
                        m.pairs.insert(key, tw.clone());
                        claimed.insert(tw.clone());
                    }
                }
                None => {
                    if let Some(r) = by_id.get(tw.as_str()) {
                        m.removed.push(Removed {
                            kind: Kind::Workflow,
                            local_id: tw.clone(),
                            name: r.name().to_string(),
                            parent: t.clone(),
                        });
                    }
                }
            }
        }
        let target_subs = ta.refs_to(Kind::Agent);
        for ss in &sa.refs_to(Kind::Agent) {
            let key = (Kind::Agent, ss.clone());
            if m.pairs.contains_key(&key) {
                continue;
            }
            let hit = target_subs.iter().find(|ts| {
                !claimed.contains(*ts) && by_id.get(ts.as_str()).is_some_and(|r| r.name() == ss)
            });
            if let Some(ts) = hit {
                m.pairs.insert(key, ts.clone());
                claimed.insert(ts.clone());
                queue.push((ss.clone(), ts.clone()));
            }
        }
    }
    for r in source.iter() {
        let key = (r.kind(), r.name().to_string());
        if m.pairs.contains_key(&key) {
            continue;
        }
        if r.kind() == Kind::Workflow && positional.contains(r.name()) {
            continue;
        }
        if r.kind() == Kind::Agent && Some(r.name()) == source_root {
            continue;
        }
        if let Some(id) = by_name.get(&(r.kind(), r.name())) {
            if claimed.insert(id.to_string()) {
                m.pairs.insert(key, id.to_string());
            }
        }
    }
    m
}

/// Pair steps by type URI and occurrence: `(source index, target index)`,
/// source order first, then target steps left over.
pub fn pair_steps(
    source: &[WorkflowStep],
    target: &[WorkflowStep],
) -> Vec<(Option<usize>, Option<usize>)> {
    let key = |steps: &[WorkflowStep]| -> Vec<(String, usize)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        steps
            .iter()
            .map(|s| {
                let n = seen.entry(s.step_type.as_str()).or_default();
                *n += 1;
                (s.step_type.clone(), *n)
            })
            .collect()
    };
    pair_by(&key(source), &key(target))
}

/// Pair snippets by name: `(source index, target index)`.
pub fn pair_snippets(
    source: &[Snippet],
    target: &[Snippet],
) -> Vec<(Option<usize>, Option<usize>)> {
    let s: Vec<String> = source.iter().map(|x| x.name.clone()).collect();
    let t: Vec<String> = target.iter().map(|x| x.name.clone()).collect();
    pair_by(&s, &t)
}

fn pair_by<K: Eq + std::hash::Hash>(
    source: &[K],
    target: &[K],
) -> Vec<(Option<usize>, Option<usize>)> {
    let pos: HashMap<&K, usize> = target.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut used = vec![false; target.len()];
    let mut out = Vec::new();
    for (i, k) in source.iter().enumerate() {
        match pos.get(k) {
            Some(&j) if !used[j] => {
                used[j] = true;
                out.push((Some(i), Some(j)));
            }
            _ => out.push((Some(i), None)),
        }
    }
    for (j, u) in used.iter().enumerate() {
        if !u {
            out.push((None, Some(j)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t: &str) -> WorkflowStep {
        WorkflowStep {
            step_type: t.into(),
            name: None,
            tools: vec![],
            knowledge_bases: vec![],
            workflow: None,
            config: Default::default(),
        }
    }

    #[test]
    fn steps_pair_by_type_and_occurrence() {
        let s = [
            step("ai.labs.llm"),
            step("ai.labs.httpcalls"),
            step("ai.labs.llm"),
        ];
        let t = [
            step("ai.labs.httpcalls"),
            step("ai.labs.llm"),
            step("ai.labs.behavior"),
        ];
        let p = pair_steps(&s, &t);
        assert_eq!(
            p,
            vec![
                (Some(0), Some(1)),
                (Some(1), Some(0)),
                (Some(2), None),
                (None, Some(2))
            ]
        );
    }
}
