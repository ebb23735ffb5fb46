//! Scale benchmark: ferry on tenants of 10,000 and 100,000 resources.
//!
//! Run with `cargo bench --bench scale` (add `-- 10000` to run one size).
//! It generates a realistic tenant (about 1 KB of YAML per resource), then
//! times the release `ferry` binary as a user runs it, next to baselines
//! measured in the same run on the same files: hashing every file with
//! blake3 on both cores, parsing every file plus one SQLite transaction,
//! writing the files. Every figure is the median of several runs; peak
//! memory is the child process's maximum resident set. The report is
//! printed as a Markdown table and written to `target/bench-report.md`.
//!
//! With `FERRY_BENCH_KEEP=DIR` set, it only generates the tree into a repo
//! at `DIR` (tenant `big` created, nothing applied) and stops: a tenant to
//! profile by hand.
//!
//! `cargo bench --bench scale -- 100000 remote` runs only what the row of a
//! remote `plan --ref` needs (the tree, one apply, the git rows up to that
//! row): the one-file plan from git against a `ferry serve` over the same
//! store, next to the same plan against the local store in the same run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::domain::model::*;

mod support;
use rayon::prelude::*;
use support::ferry_bin;

/// One timed child process: wall time and peak RSS in KiB (measured by GNU time,
/// so the figure is the child's own, not the forked copy of this process).
fn run_child(cmd: &mut Command) -> (Duration, u64) {
    let rss_file = tempfile::NamedTempFile::new().expect("tmp");
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(rss_file.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        wrapped.current_dir(d);
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    let start = Instant::now();
    let out = wrapped
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("spawn");
    let elapsed = start.elapsed();
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 2 {
        panic!(
            "{cmd:?} failed with {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rss = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (elapsed, rss)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn words(seed: usize, n: usize) -> String {
    const W: &[&str] = &[
        "customer",
        "refund",
        "invoice",
        "policy",
        "answer",
        "escalate",
        "billing",
        "account",
        "order",
        "shipping",
        "polite",
        "summarize",
        "verify",
        "identity",
        "ticket",
        "priority",
        "cite",
        "knowledge",
    ];
    (0..n)
        .map(|i| W[(seed * 7 + i * 13) % W.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn meta(name: String) -> Metadata {
    Metadata {
        id: None,
        name,
        syncable: false,
        synced_from: None,
        origin_id: None,
        created_by: None,
    }
}

/// A tenant of `n` resources, about 1 KB of YAML each, with references.
fn generate(n: usize) -> TenantModel {
    let count = |share: f64| ((n as f64) * share).round().max(1.0) as usize;
    let (docs, conns, kbs, tools, wfs, evals) = (
        count(0.30),
        count(0.01),
        count(0.04),
        count(0.35),
        count(0.10),
        count(0.05),
    );
    let agents = n
        .saturating_sub(docs + conns + kbs + tools + wfs + evals)
        .max(1);
    let mut m = TenantModel::default();
    for i in 0..docs {
        m.insert(Resource {
            metadata: meta(format!("doc-{i:06}")),
            spec: Spec::Document(Box::new(DocumentSpec {
                title: format!("Document {i}: {}", words(i, 24)),
                media_type: "text/markdown".into(),
                size: Some(1000 + i as u64),
                content_hash: Some(format!(
                    "blake3:{}",
                    blake3::hash(format!("doc{i}").as_bytes()).to_hex()
                )),
                content_file: None,
                source_url: Some(format!(
                    "https://docs.example.com/kb/{i}/{}",
                    words(i, 8).replace(' ', "-")
                )),
                tags: vec!["policy".into(), format!("team-{}", i % 17)],
            })),
            content: None,
        });
    }
    for i in 0..conns {
        let mut credentials = BTreeMap::new();
        credentials.insert("apiKey".to_string(), format!("${{vars.API_KEY_{i}}}"));
        let mut headers = BTreeMap::new();
        headers.insert("X-Team".to_string(), format!("team-{i}"));
        m.insert(Resource {
            metadata: meta(format!("conn-{i:04}")),
            spec: Spec::Connection(Box::new(ConnectionSpec {
                description: Some(words(i, 12)),
                connection_type: "http".into(),
                base_url: format!("https://api{i}.example.com/v2"),
                auth: Some(ConnectionAuth {
                    auth_type: "apiKey".into(),
                    header: Some("X-Api-Key".into()),
                }),
                credentials,
                headers,
                timeout_ms: Some(5000),
            })),
            content: None,
        });
    }
    for i in 0..kbs {
        m.insert(Resource {
            metadata: meta(format!("kb-{i:05}")),
            spec: Spec::KnowledgeBase(Box::new(KnowledgeBaseSpec {
                description: Some(words(i, 60)),
                embedding: Some(Embedding {
                    provider: "openai".into(),
                    model: "text-embedding-3-small".into(),
                }),
                chunking: Some(Chunking {
                    size: 512,
                    overlap: 64,
                }),
                documents: (0..6)
                    .map(|j| format!("doc-{:06}", (i * 6 + j) % docs))
                    .collect(),
            })),
            content: None,
        });
    }
    for i in 0..tools {
        m.insert(Resource {
            metadata: meta(format!("tool-{i:06}")),
            spec: Spec::Tool(Box::new(ToolSpec {
                description: Some(format!("Looks up {} for the agent. {}", words(i, 4), words(i + 1, 40))),
                tool_type: "http".into(),
                connection: Some(format!("conn-{:04}", i % conns)),
                knowledge_base: None,
                request: Some(ToolRequest { method: "GET".into(), path: format!("/records/{i}/{{id}}") }),
                code: None,
                input_schema: Some(serde_json::json!({
                    "type": "object",
                    "properties": {"id": {"type": "string", "description": "Record id"}, "verbose": {"type": "boolean"}},
                    "required": ["id"]
                }).into()),
                actions: vec![],
            })),
            content: None,
        });
    }
    for i in 0..wfs {
        m.insert(Resource {
            metadata: meta(format!("wf-{i:05}")),
            spec: Spec::Workflow(Box::new(WorkflowSpec {
                description: Some(words(i, 40)),
                steps: vec![
                    WorkflowStep {
                        step_type: "ai.labs.behavior".into(),
                        name: Some("route".into()),
                        tools: vec![],
                        knowledge_bases: vec![],
                        workflow: None,
                        config: BTreeMap::new(),
                    },
                    WorkflowStep {
                        step_type: "ai.labs.httpcalls".into(),
                        name: Some("lookup".into()),
                        tools: vec![format!("tool-{:06}", i % tools)],
                        knowledge_bases: vec![],
                        workflow: None,
                        config: BTreeMap::new(),
                    },
                    WorkflowStep {
                        step_type: "ai.labs.llm".into(),
                        name: Some("answer".into()),
                        tools: vec![],
                        knowledge_bases: vec![format!("kb-{:05}", i % kbs)],
                        workflow: None,
                        config: [("temperature".to_string(), serde_json::json!(0.3).into())].into(),
                    },
                ],
            })),
            content: None,
        });
    }
    for i in 0..agents {
        let instructions = (0..8)
            .map(|l| format!("{}.", words(i + l, 11)))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        m.insert(Resource {
            metadata: meta(format!("agent-{i:05}")),
            spec: Spec::Agent(Box::new(AgentSpec {
                description: Some(words(i, 30)),
                agent_type: "chat".into(),
                model: ModelConfig {
                    provider: "openai".into(),
                    name: "gpt-4o-mini".into(),
                    temperature: Some(0.2),
                    max_tokens: Some(1024),
                },
                instructions: Some(instructions),
                snippets: vec![Snippet {
                    name: "greeting".into(),
                    text: "Hello! How can I help?".into(),
                }],
                guardrails: vec![Guardrail {
                    name: "pii-redaction".into(),
                    enabled: true,
                    config: BTreeMap::new(),
                }],
                access: Some("team".into()),
                tags: vec!["support".into()],
                tools: vec![
                    format!("tool-{:06}", (i * 3) % tools),
                    format!("tool-{:06}", (i * 3 + 1) % tools),
                    "builtin/web-search".into(),
                ],
                knowledge_bases: vec![format!("kb-{:05}", i % kbs)],
                sharepoint_folder: None,
                sub_agents: if i > 0 && i % 10 == 0 {
                    vec![format!("agent-{:05}", i - 1)]
                } else {
                    vec![]
                },
                workflows: vec![format!("wf-{:05}", i % wfs)],
            })),
            content: None,
        });
    }
    for i in 0..evals {
        m.insert(Resource {
            metadata: meta(format!("eval-{i:05}")),
            spec: Spec::Evaluation(Box::new(EvaluationSpec {
                description: Some(words(i, 30)),
                target: EvaluationTarget {
                    agent: Some(format!("agent-{:05}", i % agents)),
                    workflow: None,
                },
                pass_threshold: Some(0.9),
                cases: (0..5)
                    .map(|c| EvaluationCase {
                        name: format!("case-{c}"),
                        input: words(i + c, 16),
                        expect_contains: vec!["refund".into()],
                        expect_tools: vec![],
                    })
                    .collect(),
            })),
            content: None,
        });
    }
    m
}

struct Row {
    op: String,
    ferry: Duration,
    rss_kib: u64,
    baseline: String,
    base: Option<Duration>,
}

fn dir_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn bench_size(bin: &Path, n: usize, runs: usize, remote_only: bool, report: &mut String) {
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir()
        .expect("tempdir");
    let repo = work.path().join("repo");
    let ferry = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.current_dir(&repo).args(args).env("NO_COLOR", "1");
        c
    };
    run_child(Command::new(bin).args(["init", repo.to_str().unwrap_or("repo")]));
    run_child(&mut ferry(&["tenant", "create", "big"]));
    eprintln!("[{n}] generating the tree");
    let model = generate(n);
    let tree = ferry::domain::tree::encode_model(&model).expect("encode");
    let tenant_dir = repo.join("tenants/big");
    ferry::domain::tree::folder::write_tree(&tenant_dir, &tree).expect("write");
    let tree_bytes = dir_bytes(&tenant_dir);
    if let Some(keep) = std::env::var_os("FERRY_BENCH_KEEP") {
        // Only the tree, for profiling by hand: keep the repo and stop.
        let keep = PathBuf::from(keep);
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::rename(&repo, &keep).expect("keep the repo");
        eprintln!("[{n}] the tree is in {}", keep.display());
        return;
    }
    let files: Vec<PathBuf> = walkdir::WalkDir::new(&tenant_dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| e.path().to_path_buf())
        .collect();
    let mut rows: Vec<Row> = Vec::new();

    // Baselines.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    let hash_all = || {
        let t = Instant::now();
        pool.install(|| {
            files.par_iter().for_each(|f| {
                let b = std::fs::read(f).unwrap_or_default();
                std::hint::black_box(blake3::hash(&b));
            })
        });
        t.elapsed()
    };
    hash_all();
    let base_hash = median((0..runs).map(|_| hash_all()).collect());
    let parse_insert = || {
        let t = Instant::now();
        let parsed: Vec<ferry::domain::model::Resource> = files
            .iter()
            .filter_map(|f| {
                let b = std::fs::read(f).ok()?;
                let p = f
                    .strip_prefix(&tenant_dir)
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                ferry::domain::tree::decode_file(&p, &b).ok()
            })
            .collect();
        let db = tempfile::NamedTempFile::new().expect("tmp");
        let conn = rusqlite::Connection::open(db.path()).expect("db");
        conn.execute_batch("CREATE TABLE r (id TEXT PRIMARY KEY, doc TEXT)")
            .expect("t");
        let tx = conn.unchecked_transaction().expect("tx");
        {
            let mut st = tx.prepare("INSERT INTO r VALUES (?1, ?2)").expect("p");
            for r in &parsed {
                st.execute(rusqlite::params![
                    r.name(),
                    String::from_utf8_lossy(&ferry::domain::state::canonical_json(r))
                ])
                .expect("i");
            }
        }
        tx.commit().expect("c");
        t.elapsed()
    };
    let base_parse = median((0..runs.min(3)).map(|_| parse_insert()).collect());
    let write_files = || {
        let out = work.path().join("plain-write");
        let t = Instant::now();
        for (p, b) in &tree.files {
            let f = out.join(p);
            if let Some(d) = f.parent() {
                let _ = std::fs::create_dir_all(d);
            }
            let _ = std::fs::write(f, b);
        }
        t.elapsed()
    };
    let base_write = write_files();

    if remote_only {
        run_child(&mut ferry(&["apply", "--tenant", "big", "--yes"]));
        git_and_zip_rows(bin, &repo, work.path(), &tenant_dir, true, &mut rows);
        report_rows(n, runs, tree_bytes, tree.files.len(), &rows, report);
        return;
    }

    // apply everything into a fresh store (each run into its own store file).
    eprintln!("[{n}] apply everything");
    let mut times = Vec::new();
    let mut rss = 0;
    for i in 0..runs.min(3) {
        let url = format!("sqlite:.ferry/fresh-{i}.db");
        run_child(&mut ferry(&[
            "tenant", "create", "big", "--store", &url, "--force",
        ]));
        let (t, r) = run_child(&mut ferry(&[
            "apply", "--tenant", "big", "--yes", "--store", &url,
        ]));
        times.push(t);
        rss = rss.max(r);
    }
    rows.push(Row {
        op: "apply everything into a fresh store".into(),
        ferry: median(times),
        rss_kib: rss,
        baseline: "parse every file + 1 SQLite transaction".into(),
        base: Some(base_parse),
    });
    run_child(&mut ferry(&["apply", "--tenant", "big", "--yes"]));

    let timed = |args: &[&str], runs: usize| {
        let mut times = Vec::new();
        let mut rss = 0;
        for _ in 0..runs {
            let (t, r) = run_child(&mut ferry(args));
            times.push(t);
            rss = rss.max(r);
        }
        (median(times), rss)
    };
    eprintln!("[{n}] plan with no change");
    let (t, r) = timed(&["plan", "--tenant", "big"], runs);
    rows.push(Row {
        op: "plan from a folder, no change".into(),
        ferry: t,
        rss_kib: r,
        baseline: "blake3 of every file, 2 threads".into(),
        base: Some(base_hash),
    });
    eprintln!("[{n}] validate");
    let (t, r) = timed(&["validate", "--tenant", "big"], runs.min(3));
    rows.push(Row {
        op: "validate (parse and check every file)".into(),
        ferry: t,
        rss_kib: r,
        baseline: "parse every file + 1 SQLite transaction".into(),
        base: Some(base_parse),
    });
    eprintln!("[{n}] export");
    let (t, r) = timed(
        &[
            "export",
            "--tenant",
            "big",
            "--out",
            work.path().join("export").to_str().unwrap_or("export"),
        ],
        1,
    );
    rows.push(Row {
        op: "export everything (first time)".into(),
        ferry: t,
        rss_kib: r,
        baseline: "write every file".into(),
        base: Some(base_write),
    });
    let (t, r) = timed(
        &[
            "export",
            "--tenant",
            "big",
            "--out",
            work.path().join("export").to_str().unwrap_or("export"),
        ],
        runs,
    );
    rows.push(Row {
        op: "export again (files already right)".into(),
        ferry: t,
        rss_kib: r,
        baseline: "write every file".into(),
        base: Some(base_write),
    });

    // One change.
    let agent = tenant_dir.join("agents/agent-00001.yaml");
    let original = std::fs::read_to_string(&agent).expect("agent");
    let mut flip = false;
    let mut one_change = |cmd: &[&str]| {
        flip = !flip;
        let text = if flip {
            original.replacen(
                "instructions: |\n    ",
                "instructions: |\n    Always be brief. ",
                1,
            )
        } else {
            original.clone()
        };
        std::fs::write(&agent, text).expect("edit");
        run_child(&mut ferry(cmd))
    };
    eprintln!("[{n}] plan and apply one change");
    let (mut pt, mut at, mut pr, mut ar) = (Vec::new(), Vec::new(), 0, 0);
    for _ in 0..runs {
        let (t, r) = one_change(&["plan", "--tenant", "big"]);
        pt.push(t);
        pr = pr.max(r);
        let (t, r) = run_child(&mut ferry(&["apply", "--tenant", "big", "--yes"]));
        at.push(t);
        ar = ar.max(r);
    }
    rows.push(Row {
        op: "plan from a folder, 1 changed file".into(),
        ferry: median(pt),
        rss_kib: pr,
        baseline: "blake3 of every file, 2 threads".into(),
        base: Some(base_hash),
    });
    rows.push(Row {
        op: "apply 1 changed file".into(),
        ferry: median(at),
        rss_kib: ar,
        baseline: "blake3 of every file, 2 threads".into(),
        base: Some(base_hash),
    });

    let _ = std::fs::write(&agent, &original);
    run_child(&mut ferry(&["apply", "--tenant", "big", "--yes"]));

    git_and_zip_rows(bin, &repo, work.path(), &tenant_dir, false, &mut rows);
    report_rows(n, runs, tree_bytes, tree.files.len(), &rows, report);
}

/// Print the table of one size and add it to the report.
fn report_rows(
    n: usize,
    runs: usize,
    tree_bytes: u64,
    files: usize,
    rows: &[Row],
    report: &mut String,
) {
    let mut s = format!(
        "\n#### {n} resources ({:.1} MB of YAML, {} files; median of {runs} runs)\n\n| operation | ferry | peak memory | baseline (same run) | baseline | ratio |\n|---|---:|---:|---|---:|---:|\n",
        tree_bytes as f64 / 1e6,
        files
    );
    // Short times in milliseconds, so that 10k and 100k can be told apart.
    let time = |d: Duration| match d.as_secs_f64() {
        t if t < 0.1 => format!("{:.1} ms", t * 1e3),
        t => format!("{t:.2} s"),
    };
    for r in rows {
        let (b, ratio) = match r.base {
            Some(b) => (
                time(b),
                format!("{:.2}×", r.ferry.as_secs_f64() / b.as_secs_f64()),
            ),
            None => ("–".into(), "–".into()),
        };
        s.push_str(&format!(
            "| {} | {} | {:.0} MB ({:.2}× tree) | {} | {b} | {ratio} |\n",
            r.op,
            time(r.ferry),
            r.rss_kib as f64 / 1024.0,
            (r.rss_kib as f64 * 1024.0) / tree_bytes as f64,
            r.baseline
        ));
    }
    print!("{s}");
    report.push_str(&s);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let sizes: Vec<usize> = if args.is_empty() {
        vec![10_000, 100_000]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    let bin = ferry_bin();
    let mut report = format!(
        "### Benchmark ({} cores, {})\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
    let remote_only = args.iter().any(|a| a == "remote");
    for n in sizes {
        let runs = if n >= 100_000 { 3 } else { 5 };
        bench_size(&bin, n, runs, remote_only, &mut report);
    }
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.md");
    let _ = std::fs::write(&out, &report);
    eprintln!("report written to {}", out.display());
}

/// Run a shell command line in `dir`, timed (baselines: git, zip, unzip).
fn shell(dir: &Path, line: &str) -> Duration {
    let mut c = Command::new("sh");
    c.current_dir(dir)
        .arg("-c")
        .arg(line)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid");
    run_child(&mut c).0
}

/// The rows that need git and ZIP: plan --ref with one change, export +
/// commit of everything and of one change, ZIP export and import.
fn git_and_zip_rows(
    bin: &Path,
    repo: &Path,
    work: &Path,
    tenant_dir: &Path,
    remote_only: bool,
    rows: &mut Vec<Row>,
) {
    let store = format!("sqlite:{}", repo.join(".ferry/store.db").display());
    let repo2 = work.join("repo2");
    let ferry2 = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.current_dir(&repo2)
            .args(args)
            .args(["--store", &store])
            .env("NO_COLOR", "1")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.invalid");
        c
    };
    run_child(Command::new(bin).args(["init", repo2.to_str().unwrap_or("repo2")]));

    // Baseline: write the files, then `git add -A && git commit`.
    eprintln!("  git baselines");
    let base_dir = work.join("git-baseline");
    let _ = std::fs::create_dir_all(&base_dir);
    shell(&base_dir, "git init -q .");
    let t = Instant::now();
    for entry in walkdir::WalkDir::new(tenant_dir).into_iter().flatten() {
        if let Ok(rel) = entry.path().strip_prefix(tenant_dir) {
            let dest = base_dir.join("tenants/big").join(rel);
            if entry.file_type().is_dir() {
                let _ = std::fs::create_dir_all(&dest);
            } else if let Ok(b) = std::fs::read(entry.path()) {
                let _ = std::fs::write(&dest, b);
            }
        }
    }
    let write = t.elapsed();
    let add_commit = shell(&base_dir, "git add -A && git commit -q -m import");
    let base_all = write + add_commit;

    eprintln!("  export + commit of everything");
    let (t_all, r_all) = run_child(&mut ferry2(&[
        "export", "--tenant", "big", "--commit", "-m", "import",
    ]));
    rows.push(Row {
        op: "export + commit of everything".into(),
        ferry: t_all,
        rss_kib: r_all,
        baseline: "write the files, then `git add -A && git commit`".into(),
        base: Some(base_all),
    });
    run_child(&mut ferry2(&[
        "apply", "--tenant", "big", "--ref", "HEAD", "--yes",
    ]));

    // One change, in git: plan --ref reads only what changed since the applied commit.
    eprintln!("  plan --ref with 1 changed file");
    let agent = repo2.join("tenants/big/agents/agent-00002.yaml");
    let original = std::fs::read_to_string(&agent).unwrap_or_default();
    let _ = std::fs::write(
        &agent,
        original.replacen(
            "instructions: |\n    ",
            "instructions: |\n    Be brief. ",
            1,
        ),
    );
    shell(&repo2, "git commit -q -a -m edit");
    let mut pt = Vec::new();
    let mut pr = 0;
    for _ in 0..3 {
        let (t, r) = run_child(&mut ferry2(&["plan", "--tenant", "big", "--ref", "HEAD"]));
        pt.push(t);
        pr = pr.max(r);
    }
    let (full, _) = run_child(&mut ferry2(&["validate", "--tenant", "big"]));
    let local = median(pt);
    rows.push(Row {
        op: "`plan --ref` with 1 changed file".into(),
        ferry: local,
        rss_kib: pr,
        baseline: "the full plan (parse and check every file)".into(),
        base: Some(full),
    });
    let store_db = repo.join(".ferry/store.db");
    rows.push(remote_plan_row(bin, &repo2, &store_db, work, local));
    if remote_only {
        return;
    }

    // Export + commit of one change made in the store.
    eprintln!("  export + commit of 1 change");
    run_child(&mut ferry2(&[
        "apply", "--tenant", "big", "--ref", "HEAD", "--yes",
    ]));
    // Three rounds, each its own change (medians; the disk is noisy).
    let other = tenant_dir.join("agents/agent-00003.yaml");
    let other_text = std::fs::read_to_string(&other).unwrap_or_default();
    let base_file = base_dir.join("tenants/big/agents/agent-00003.yaml");
    let (mut t_one, mut b_one, mut r_one) = (Vec::new(), Vec::new(), 0);
    for round in 0..3 {
        let changed = other_text.replacen(
            "instructions: |\n    ",
            &format!("instructions: |\n    Be kind ({round}). "),
            1,
        );
        let _ = std::fs::write(&other, &changed);
        let mut c = Command::new(bin);
        c.current_dir(repo)
            .args(["apply", "--tenant", "big", "--yes"])
            .env("NO_COLOR", "1");
        run_child(&mut c);
        let (t, r) = run_child(&mut ferry2(&[
            "export",
            "--tenant",
            "big",
            "--commit",
            "-m",
            "one change",
        ]));
        t_one.push(t);
        r_one = r_one.max(r);
        let _ = std::fs::write(&base_file, &changed);
        b_one.push(shell(&base_dir, "git commit -q -a -m one"));
    }
    rows.push(Row {
        op: "export + commit of 1 change (median of 3)".into(),
        ferry: median(t_one),
        rss_kib: r_one,
        baseline: "`git commit -a`".into(),
        base: Some(median(b_one)),
    });
    let _ = std::fs::write(&other, &other_text);

    // ZIP export and import, three rounds each (medians; the disk is noisy).
    eprintln!("  ZIP export and import");
    let zip_row = zip_rows(work, &repo2, &ferry2, 3);
    rows.extend(zip_row);
}

/// The ZIP export and import rows: `rounds` exports and `zip -r`s of the
/// same tree, then `rounds` imports (each into its own new tenant) and
/// `unzip`s of the same archive; medians, and the largest peak memory.
fn zip_rows(
    work: &Path,
    repo2: &Path,
    ferry2: &dyn Fn(&[&str]) -> Command,
    rounds: usize,
) -> Vec<Row> {
    let zip_s = work.join("big.zip").display().to_string();
    let (mut t_zip, mut b_zip, mut r_zip) = (Vec::new(), Vec::new(), 0);
    for i in 0..rounds {
        let (t, r) = run_child(&mut ferry2(&[
            "zip",
            "export",
            "--tenant",
            "big",
            "--all",
            "-o",
            &zip_s,
            "--created-at",
            "2026-01-01T00:00:00Z",
        ]));
        t_zip.push(t);
        r_zip = r_zip.max(r);
        let cli = work.join(format!("cli-{i}.zip"));
        b_zip.push(shell(
            &repo2.join("tenants"),
            &format!("zip -q -r {} big", cli.display()),
        ));
        let _ = std::fs::remove_file(&cli);
    }
    let (mut t_imp, mut b_imp, mut r_imp) = (Vec::new(), Vec::new(), 0);
    for i in 0..rounds {
        let tenant = format!("bigzip{i}");
        run_child(&mut ferry2(&["tenant", "create", &tenant]));
        let (t, r) = run_child(&mut ferry2(&[
            "zip",
            "import",
            &zip_s,
            "--tenant",
            &tenant,
            "--strategy",
            "create",
            "--yes",
        ]));
        t_imp.push(t);
        r_imp = r_imp.max(r);
        let out = format!("unzipped-{i}");
        b_imp.push(shell(work, &format!("unzip -q {zip_s} -d {out}")));
        let _ = std::fs::remove_dir_all(work.join(&out));
    }
    vec![
        Row {
            op: "ZIP export of the tenant".into(),
            ferry: median(t_zip),
            rss_kib: r_zip,
            baseline: "`zip -q -r` of the same tree".into(),
            base: Some(median(b_zip)),
        },
        Row {
            op: "ZIP import into the store".into(),
            ferry: median(t_imp),
            rss_kib: r_imp,
            baseline: "`unzip -q` of the same archive".into(),
            base: Some(median(b_imp)),
        },
    ]
}

/// `plan --ref` with 1 changed file against a `ferry serve` over a copy of
/// the store (the same last applied commit): the client sends the one file,
/// the server plans. Checked once to send exactly one file, then timed.
fn remote_plan_row(bin: &Path, repo2: &Path, store_db: &Path, work: &Path, local: Duration) -> Row {
    use std::io::BufRead;
    eprintln!("  plan --ref with 1 changed file, against a remote ferry serve");
    let served = work.join("served");
    run_child(Command::new(bin).args(["init", served.to_str().unwrap_or("served")]));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", store_db.display()));
        if from.exists() {
            std::fs::copy(&from, served.join(format!("copied.db{suffix}"))).expect("copy store");
        }
    }
    let url = format!("sqlite:{}", served.join("copied.db").display());
    let on_copy = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.current_dir(&served)
            .args(args)
            .args(["--store", &url])
            .env("NO_COLOR", "1");
        c
    };
    run_child(&mut on_copy(&["--as", "root", "user", "add", "root"]));
    let made = on_copy(&["--as", "root", "token", "create", "--user", "root"])
        .output()
        .expect("token");
    let token = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let mut server = on_copy(&["serve", "--addr", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = server.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        // Read every line (the request log too), so the server never blocks on a full pipe.
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.strip_prefix("ferry: listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the server did not start");
    let remote = || {
        let mut c = Command::new(bin);
        c.current_dir(repo2)
            .args(["plan", "--tenant", "big", "--ref", "HEAD"])
            .env("FERRY_STORE", &base)
            .env("FERRY_TOKEN", &token)
            .env("NO_COLOR", "1");
        c
    };
    let checked = remote().output().expect("remote plan");
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains("sent the server 1 file(s) of 1 resource(s)"),
        "the remote plan did not send exactly one file: {said}"
    );
    let (mut times, mut rss) = (Vec::new(), 0);
    for _ in 0..3 {
        let (t, r) = run_child(&mut remote());
        times.push(t);
        rss = rss.max(r);
    }
    let _ = server.kill();
    let _ = server.wait();
    Row {
        op: "`plan --ref` with 1 changed file, against a remote `ferry serve` (sends 1 file)"
            .into(),
        ferry: median(times),
        rss_kib: rss,
        baseline: "the same plan against the local store".into(),
        base: Some(local),
    }
}
