//! Fuzz target `staging_body`: every input through [`ferry::fuzzing::staging_body`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::staging_body(data));
