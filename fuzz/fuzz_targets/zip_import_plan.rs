//! Fuzz target `zip_import_plan`: every input through [`ferry::fuzzing::zip_import_plan`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::zip_import_plan(data));
