//! The integration tests: one binary, driving the real `ferry` binary in
//! temporary config repos through [`common::TestEnv`].

mod common;
mod core;
mod fixtures;
mod git;
mod layers;
mod promote;
mod props;
mod schemas;
mod serve;
mod staging;
mod ux;
mod zip;
