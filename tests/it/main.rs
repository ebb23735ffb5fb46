//! The integration tests: one binary, driving the real `ferry` binary in
//! temporary config repos through [`common::TestEnv`].

mod common;
mod conformance;
mod core;
mod fixtures;
mod git;
mod harden;
mod layers;
mod postgres;
mod promote;
mod props;
mod readme_tour;
mod roles;
mod schemas;
mod serve;
mod staging;
mod ui;
mod ux;
mod zip;
