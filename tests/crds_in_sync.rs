//! `crds/` must be exactly what `kubefoundry crds --out crds/` generates from the Rust types:
//! the YAML is never edited by hand, so any difference means someone forgot to regenerate.

use std::{collections::BTreeSet, path::Path};

const REGENERATE: &str = "run `cargo run -- crds --out crds/` (or `just crds`) and commit the result";

#[test]
fn crds_dir_matches_generated_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected = BTreeSet::new();
    for crd in kubefoundry::crd::all() {
        let file = kubefoundry::crd::file_name(&crd);
        let generated = kubefoundry::crd::to_yaml(&crd).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(&file))
            .unwrap_or_else(|e| panic!("crds/{file} is missing ({e}); {REGENERATE}"));
        assert!(
            on_disk == generated,
            "crds/{file} differs from the Rust types; {REGENERATE}"
        );
        expected.insert(file);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let stale: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "crds/ holds files no kind generates: {stale:?}; delete them and {REGENERATE}"
    );
}

#[test]
fn printed_stream_is_every_file_in_order() {
    let stream = kubefoundry::crd::all_yaml().unwrap();
    let docs: Vec<_> = stream.split("---\n").filter(|d| !d.is_empty()).collect();
    assert_eq!(docs.len(), 13, "thirteen kinds");
    for (doc, crd) in docs.iter().zip(kubefoundry::crd::all()) {
        assert_eq!(*doc, kubefoundry::crd::to_yaml(&crd).unwrap());
    }
}
