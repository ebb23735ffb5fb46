//! Fuzz target `plan_file`: every input through [`ferry::fuzzing::plan_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::plan_file(data));
