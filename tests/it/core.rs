//! Core: init, tenants, validate, plan, apply, export.

use crate::common::*;

#[test]
fn small_tree_plans_applies_and_settles() {
    let env = TestEnv::new();
    env.ferry(&["tenant", "create", "acme-dev"]).ok();
    small_tree(&env, "acme-dev");
    env.ferry(&["validate", "--tenant", "acme-dev"]).ok();
    env.ferry(&["plan", "--tenant", "acme-dev", "--detailed-exitcode"]).expect(2);
    env.ferry(&["apply", "--tenant", "acme-dev", "--yes"]).ok();
    let plan = env
        .ferry(&["plan", "--tenant", "acme-dev", "--detailed-exitcode", "--output", "json"])
        .expect(0)
        .json();
    assert_eq!(plan["summary"]["skip"], 4);
    assert_eq!(plan["actions"].as_array().unwrap().len(), 0);
}
