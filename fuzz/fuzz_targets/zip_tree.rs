//! Fuzz target `zip_tree`: every input through [`ferry::fuzzing::zip_tree`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::zip_tree(data));
