//! The committed JSON Schemas are exactly what the model types generate.

use crate::common::project_root;

#[test]
fn committed_schemas_are_fresh() {
    let dir = project_root().join("schemas");
    let mut stale = Vec::new();
    for (name, text) in ferry::domain::schema::generate() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if committed != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas: {stale:?}\nrun `cargo run -- schemas --out schemas` and commit the result"
    );
}
