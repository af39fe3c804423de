//! The OCI state a runtime writes on the hook's stdin (untrusted: any container creator shapes
//! its id, bundle and annotations). Never panics; what parses has the fields the hook relies on.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = rootseal::oci::parse_state(data) else { return };
    assert!(!state.id().is_empty(), "a state without an id parsed");
    assert!(state.bundle().is_absolute(), "a relative bundle path parsed: {:?}", state.bundle());
    // What the hook prints about the container: short, and never a control character.
    let shown = rootseal::hook::short_id(state.id());
    assert!(shown.chars().count() <= 14, "short id {shown:?} is long");
    assert!(!shown.chars().any(char::is_control), "short id {shown:?} has a control character");
    let _ = state.status().to_string();
    if let Some(annotations) = state.annotations() {
        if let Some(image) = rootseal::policy::image_name(annotations) {
            assert!(!image.is_empty());
        }
    }
});
