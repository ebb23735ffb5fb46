//! The integration tests: one binary, driving the real `ferry` binary in
//! temporary config repos through [`common::TestEnv`].

mod ci_recipe;
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
mod remote;
mod roles;
mod schemas;
mod serve;
mod staging;
mod ux;
mod zip;
