//! The integration tests: one binary, driving the real `ferry` binary in
//! temporary config repos through [`common::TestEnv`].

mod ci_recipe;
mod common;
mod conformance;
mod core;
mod crash;
mod credentials;
mod fixtures;
mod fuzz_corpus;
mod git;
mod harden;
mod layers;
mod matrix;
mod output;
mod pg_outage;
mod postgres;
mod promote;
mod props;
mod readme_tour;
mod remote;
mod roles;
mod scale_guard;
mod schemas;
mod secret_scan;
mod serve;
mod staging;
mod tokens;
mod ui;
mod ui_matrix;
mod ux;
mod zip;
