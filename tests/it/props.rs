//! Property tests: the canonical encoding round-trips, a plan of a tree
//! against itself is empty, and applying `plan(a, b)` to a store at `a`
//! then exporting gives `b`.

use std::collections::BTreeMap;

use ferry::backend::store::sqlite::SqliteStore;
use ferry::backend::store::ResourceStore;
use ferry::domain::model::*;
use ferry::domain::plan::DiffOptions;
use ferry::domain::tree::{self, MemoryTree};
use ferry::service::pipeline;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9,.'!?-]{1,12}( [a-zA-Z0-9,.'!?-]{1,12}){0,4}",
        "[a-z]{1,10}( [a-z]{1,10}){0,5}\n[a-z ]{0,30}\n?",
        Just("${vars.DEFAULT_MODEL}".to_string()),
        Just("yes".to_string()),
        Just("123".to_string()),
        Just("a: b # not a comment".to_string()),
        Just("  leading spaces\nand trailing  \n".to_string()),
        Just("multi\n\nblank lines\n\n".to_string()),
        Just("\"quoted\" and 'single'".to_string()),
        Just("unicode: café ✓".to_string()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}"
}

fn subset(pool: Vec<String>) -> impl Strategy<Value = Vec<String>> {
    let n = pool.len();
    proptest::sample::subsequence(pool, 0..=n.min(3))
}

fn temperature() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        (0u32..=20).prop_map(|t| Some(f64::from(t) / 10.0))
    ]
}

prop_compose! {
    fn agent_spec(tools: Vec<String>, kbs: Vec<String>, subs: Vec<String>)
        (description in proptest::option::of(text()),
         supervisor in any::<bool>(),
         temperature in temperature(),
         max_tokens in proptest::option::of(1u32..100_000),
         instructions in proptest::option::of(text()),
         snippets in proptest::collection::btree_map(name(), text(), 0..3),
         tags in proptest::collection::vec(name(), 0..3),
         tools in subset(tools),
         builtin in any::<bool>(),
         kbs in subset(kbs),
         subs in subset(subs))
        -> AgentSpec {
        let mut tools = tools;
        if builtin { tools.push("builtin/web-search".into()); }
        AgentSpec {
            description,
            agent_type: if supervisor { "supervisor".into() } else { "chat".into() },
            model: ModelConfig { provider: "openai".into(), name: "gpt-4o-mini".into(), temperature, max_tokens },
            instructions,
            snippets: snippets.into_iter().map(|(name, text)| Snippet { name, text }).collect(),
            guardrails: vec![],
            access: None,
            tags,
            tools,
            knowledge_bases: kbs,
            sharepoint_folder: None,
            sub_agents: subs,
            workflows: vec![],
        }
    }
}

fn res(name: String, spec: Spec, syncable: bool) -> Resource {
    Resource {
        metadata: Metadata {
            id: None,
            name,
            syncable,
            synced_from: None,
            origin_id: None,
            created_by: None,
        },
        spec,
        content: None,
    }
}

/// A consistent tenant: documents, connections, knowledge bases, tools, agents
/// (sub-agents only point at earlier agents, so there are no cycles).
fn tenant() -> impl Strategy<Value = TenantModel> {
    (
        proptest::collection::btree_set(name(), 0..3),
        proptest::collection::btree_set(name(), 0..3),
        proptest::collection::btree_set(name(), 0..3),
        proptest::collection::btree_set(name(), 0..4),
        proptest::collection::btree_set(name(), 0..5),
    )
        .prop_flat_map(|(docs, conns, kbs, tools, agents)| {
            let docs: Vec<String> = docs.into_iter().collect();
            let conns: Vec<String> = conns.into_iter().collect();
            let kbs: Vec<String> = kbs.into_iter().collect();
            let tools: Vec<String> = tools.into_iter().collect();
            let agents: Vec<String> = agents.into_iter().collect();
            let doc_specs = proptest::collection::vec((text(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))), docs.len());
            let kb_specs = proptest::collection::vec(subset(docs.clone()), kbs.len());
            let tool_specs = proptest::collection::vec(
                (proptest::option::of(proptest::sample::select(if conns.is_empty() { vec![String::new()] } else { conns.clone() })), text()),
                tools.len(),
            );
            let agent_specs: Vec<_> = (0..agents.len())
                .map(|i| (agent_spec(tools.clone(), kbs.clone(), agents[..i].to_vec()), any::<bool>()))
                .collect();
            (
                Just((docs, conns, kbs, tools, agents)),
                doc_specs,
                kb_specs,
                tool_specs,
                agent_specs,
            )
        })
        .prop_map(|((docs, conns, kbs, tools, agents), doc_specs, kb_specs, tool_specs, agent_specs)| {
            let mut m = TenantModel::default();
            for (n, (title, content)) in docs.into_iter().zip(doc_specs) {
                let has = content.is_some();
                m.insert(Resource {
                    content: content.clone(),
                    ..res(
                        n.clone(),
                        Spec::Document(Box::new(DocumentSpec {
                            title,
                            media_type: "text/markdown".into(),
                            size: content.as_ref().map(|c| c.len() as u64),
                            content_hash: content.as_ref().map(|c| ferry::domain::ids::content_hash(c)),
                            content_file: has.then(|| format!("{n}.md")),
                            source_url: None,
                            tags: vec![],
                        })),
                        false,
                    )
                });
            }
            for n in conns {
                let mut credentials = BTreeMap::new();
                credentials.insert("apiKey".to_string(), "${vars.API_KEY}".to_string());
                m.insert(res(
                    n,
                    Spec::Connection(Box::new(ConnectionSpec {
                        description: None,
                        connection_type: "http".into(),
                        base_url: "https://api.example.com".into(),
                        auth: None,
                        credentials,
                        headers: BTreeMap::new(),
                        timeout_ms: Some(5000),
                    })),
                    false,
                ));
            }
            for (n, documents) in kbs.into_iter().zip(kb_specs) {
                m.insert(res(
                    n,
                    Spec::KnowledgeBase(Box::new(KnowledgeBaseSpec {
                        description: None,
                        embedding: None,
                        chunking: Some(Chunking { size: 512, overlap: 64 }),
                        documents,
                    })),
                    false,
                ));
            }
            for (n, (conn, description)) in tools.into_iter().zip(tool_specs) {
                m.insert(res(
                    n,
                    Spec::Tool(Box::new(ToolSpec {
                        description: Some(description),
                        tool_type: "http".into(),
                        connection: conn.filter(|c| !c.is_empty()),
                        knowledge_base: None,
                        request: Some(ToolRequest { method: "GET".into(), path: "/x/{id}".into() }),
                        code: None,
                        input_schema: Some(serde_json::json!({"type": "object", "properties": {"id": {"type": "string"}}}).into()),
                        actions: vec![],
                    })),
                    false,
                ));
            }
            for (n, (spec, syncable)) in agents.into_iter().zip(agent_specs) {
                m.insert(res(n, Spec::Agent(Box::new(spec)), syncable));
            }
            m
        })
}

fn store_with(tenant: &str) -> SqliteStore {
    let mut s = SqliteStore::in_memory().unwrap();
    s.create_tenant(tenant, None, &ferry::domain::secrets::generate_keypair())
        .unwrap();
    s
}

fn apply_tree(
    store: &mut SqliteStore,
    tree: &MemoryTree,
    prune: bool,
) -> ferry::domain::plan::Plan {
    let tp = pipeline::plan_tree(store, "t", tree, DiffOptions { prune }).unwrap();
    assert!(tp.diagnostics.is_empty(), "{:?}", tp.diagnostics);
    let plan = tp.plan.unwrap();
    ferry::service::apply::apply(
        store,
        &plan,
        ferry::service::apply::ApplyOptions { force: true },
    )
    .unwrap();
    plan
}

/// The tree without tenant.toml, for comparing exported trees with written ones.
fn resources_only(mut t: MemoryTree) -> MemoryTree {
    t.files.remove(tree::TENANT_FILE);
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn decode_encode_roundtrip(m in tenant()) {
        for r in m.iter() {
            let text = ferry::domain::yaml::encode_resource(&r.metadata, &r.spec).unwrap();
            let path = resource_path(r.kind(), r.name());
            let back = tree::decode_file(&path, text.as_bytes()).unwrap();
            prop_assert_eq!(&back.metadata, &r.metadata);
            prop_assert_eq!(&back.spec, &r.spec);
            // Encoding is canonical: encoding the decoded value gives the same bytes.
            prop_assert_eq!(ferry::domain::yaml::encode_resource(&back.metadata, &back.spec).unwrap(), text);
        }
    }

    #[test]
    fn keeping_only_references_keeps_every_reference(m in tenant()) {
        for r in m.iter() {
            let mut kept = r.clone();
            kept.keep_only_references();
            prop_assert_eq!(&kept.metadata, &r.metadata);
            prop_assert_eq!(kept.refs(), r.refs());
            prop_assert!(kept.content.is_none());
        }
    }

    #[test]
    fn plan_of_a_tree_against_itself_is_empty(m in tenant()) {
        // An empty tree with prune is refused on purpose (never "delete everything").
        prop_assume!(!m.is_empty());
        let tree = tree::encode_model(&m).unwrap();
        let mut store = store_with("t");
        apply_tree(&mut store, &tree, false);
        let again = pipeline::plan_tree(&store, "t", &tree, DiffOptions { prune: true }).unwrap().plan.unwrap();
        prop_assert!(!again.has_changes(), "{:?}", again.actions);
        prop_assert_eq!(again.summary.skip, m.len());
        // And through the model pipeline, too.
        let drafts = store.all_drafts("t").unwrap();
        let (p, d) = pipeline::plan_resources(&store, "t", drafts, DiffOptions::default()).unwrap();
        prop_assert!(d.is_empty());
        prop_assert!(!p.unwrap().has_changes());
    }

    #[test]
    fn apply_plan_a_to_b_then_export_gives_b(a in tenant(), b in tenant()) {
        // Pruning to an empty tree is refused on purpose (never "delete everything").
        prop_assume!(!b.is_empty());
        let tree_a = tree::encode_model(&a).unwrap();
        let mut store = store_with("t");
        apply_tree(&mut store, &tree_a, false);
        // b written by hand: no IDs, so matching is by kind and name.
        let tree_b = tree::encode_model(&b).unwrap();
        apply_tree(&mut store, &tree_b, true);
        let exported = resources_only(pipeline::export_tree(&store, "t").unwrap());
        // The export carries the IDs the store gave; strip them to compare with b.
        let mut back = TenantModel::default();
        for (path, bytes) in &exported.files {
            if path.ends_with(".yaml") {
                let mut r = tree::decode_file(path, bytes).unwrap();
                r.metadata.id = None;
                let content = match &r.spec {
                    Spec::Document(d) => d.content_file.as_ref().and_then(|cf| exported.files.get(&format!("documents/{cf}")).cloned()),
                    _ => None,
                };
                r.content = content;
                back.insert(r);
            }
        }
        prop_assert_eq!(back, b);
    }
}
