//! Code shown in the documentation is code that runs: a fenced block right after
//! `<!-- snippet: PATH#REGION -->` in README.md or docs/*.md must equal the lines between
//! `// region REGION` and `// endregion` in PATH (compiled and run by scripts/android_client.sh).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// The lines of `// region NAME` ... `// endregion` in `source`, without the markers.
fn region(source: &str, name: &str) -> Option<String> {
    let mut lines = source.lines().skip_while(|l| l.trim() != format!("// region {name}"));
    lines.next()?;
    let mut out = Vec::new();
    for line in lines {
        if line.trim() == "// endregion" {
            return Some(out.join("\n"));
        }
        out.push(line);
    }
    None
}

/// Every `(path, region, fenced block)` a document marks, in order.
fn snippets(doc: &str) -> Vec<(String, String, Option<String>)> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("<!-- snippet:") else { continue };
        let target = rest.trim_end_matches("-->").trim();
        let (path, name) = target.split_once('#').unwrap_or((target, ""));
        let block = lines.get(i + 1).filter(|l| l.starts_with("```")).and_then(|_| {
            let body: Vec<&str> = lines[i + 2..].iter().take_while(|l| !l.starts_with("```")).copied().collect();
            (i + 2 + body.len() < lines.len()).then(|| body.join("\n"))
        });
        found.push((path.to_string(), name.to_string(), block));
    }
    found
}

#[test]
fn documented_code_is_the_tested_code() {
    let root = root();
    let mut docs = vec![root.join("README.md")];
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        docs.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "md")));
    }
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let shown = doc.strip_prefix(&root).unwrap().display().to_string();
        for (path, name, block) in snippets(&text) {
            let Some(block) = block else {
                problems.push(format!("{shown}: no fenced code block right after the snippet marker of {path}#{name}"));
                continue;
            };
            let Ok(source) = std::fs::read_to_string(root.join(&path)) else {
                problems.push(format!("{shown}: {path} does not exist"));
                continue;
            };
            match region(&source, &name) {
                None => problems.push(format!("{shown}: {path} has no `// region {name}` ... `// endregion`")),
                Some(code) if code != block => problems.push(format!(
                    "{shown}: the block of {path}#{name} differs from the code; paste the region again:\n{code}"
                )),
                Some(_) => checked.push(format!("{shown} <- {path}#{name}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The README's Kotlin Authenticator must stay one of them (it is what app developers copy).
    assert!(
        checked.iter().any(|c| c.starts_with("README.md <- examples/android-client/")),
        "README.md shows no snippet of examples/android-client; checked: {checked:?}"
    );
}

#[test]
fn snippet_markers_are_read() {
    let doc = "x\n<!-- snippet: a.kt#readme -->\n```kotlin\nfun a() {}\n```\n<!-- snippet: b.kt#r -->\ntext\n";
    let found = snippets(doc);
    assert_eq!(found[0], ("a.kt".into(), "readme".into(), Some("fun a() {}".into())));
    assert_eq!(found[1].2, None);
    let source = "a\n    // region readme\nfun a() {}\n// endregion\n";
    assert_eq!(region(source, "readme").as_deref(), Some("fun a() {}"));
    assert_eq!(region(source, "other"), None);
}
