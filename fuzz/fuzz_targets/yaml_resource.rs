//! Fuzz target `yaml_resource`: every input through [`ferry::fuzzing::yaml_resource`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::yaml_resource(data));
