//! Manifests as `apply -f` and `delete -f` read them: files, directories (their `.yaml`,
//! `.yml` and `.json` files, subdirectories with `-R`) and `-` for stdin; multi-document
//! YAML or JSON, with `List`s unwrapped. Everything is read and checked before anything is
//! sent, so a bad document changes nothing.

use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

use crate::exit::Failure;

/// One object of a manifest and where it came from, for messages.
pub(super) struct Document {
    pub(super) source: String,
    pub(super) object: Value,
}

impl Document {
    pub(super) fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    pub(super) fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub(super) fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub(super) fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
    }
}

/// Every object in `paths`, in order.
pub(super) fn read(paths: &[PathBuf], recursive: bool) -> Result<Vec<Document>, Failure> {
    if paths.is_empty() {
        return Err(Failure::bad_input("name a manifest with -f FILE, DIR or -"));
    }
    let mut documents = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| Failure::bad_input(format!("cannot read stdin: {e}")))?;
            parse("stdin", &text, &mut documents)?;
        } else {
            read_path(path, recursive, true, &mut documents)?;
        }
    }
    if documents.is_empty() {
        return Err(Failure::bad_input("the manifests hold no objects"));
    }
    Ok(documents)
}

fn read_path(
    path: &Path,
    recursive: bool,
    top: bool,
    documents: &mut Vec<Document>,
) -> Result<(), Failure> {
    let shown = path.display();
    let metadata = std::fs::metadata(path)
        .map_err(|e| Failure::bad_input(format!("cannot read {shown}: {e}")))?;
    if !metadata.is_dir() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::bad_input(format!("cannot read {shown}: {e}")))?;
        return parse(&shown.to_string(), &text, documents);
    }
    if !top && !recursive {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Failure::bad_input(format!("cannot read {shown}: {e}")))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::bad_input(format!("cannot read {shown}: {e}")))?;
    entries.sort();
    for entry in entries {
        let manifest = entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if entry.is_dir() || manifest {
            read_path(&entry, recursive, false, documents)?;
        }
    }
    Ok(())
}

/// The objects of one file's text (YAML documents; JSON is YAML too).
fn parse(source: &str, text: &str, documents: &mut Vec<Document>) -> Result<(), Failure> {
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let at = format!("{source} (document {})", index + 1);
        let value = Value::deserialize(document)
            .map_err(|e| Failure::bad_input(format!("{at} is not valid YAML or JSON: {e}")))?;
        push(&at, value, documents)?;
    }
    Ok(())
}

fn push(at: &str, value: Value, documents: &mut Vec<Document>) -> Result<(), Failure> {
    match value {
        Value::Null => Ok(()),
        Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
            let Some(Value::Array(items)) = map.get("items") else {
                return Err(Failure::bad_input(format!("{at}: a List needs items")));
            };
            for item in items {
                push(at, item.clone(), documents)?;
            }
            Ok(())
        }
        Value::Object(_) => {
            let document = Document {
                source: at.to_owned(),
                object: value,
            };
            for (field, missing) in [
                ("apiVersion", document.api_version().is_empty()),
                ("kind", document.kind().is_empty()),
                ("metadata.name", document.name().is_empty()),
            ] {
                if missing {
                    return Err(Failure::bad_input(format!(
                        "{at}: the object has no {field}"
                    )));
                }
            }
            documents.push(document);
            Ok(())
        }
        _ => Err(Failure::bad_input(format!("{at} is not an object"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lists_and_json_are_objects() {
        let mut documents = Vec::new();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\n\
                    {\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\
                    {\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"b\"}}]}\n";
        parse("x.yaml", text, &mut documents).unwrap();
        let names: Vec<&str> = documents.iter().map(Document::name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(documents[1].kind(), "Secret");
    }

    #[test]
    fn bad_documents_are_bad_input() {
        for text in [
            "kind: ConfigMap\nmetadata:\n  name: a\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
            "apiVersion: v1\nkind: [\n",
            "- a\n- b\n",
        ] {
            let mut documents = Vec::new();
            let failure = parse("x.yaml", text, &mut documents).unwrap_err();
            assert_eq!(failure.code(), 2, "{text}");
            assert!(
                failure.message().starts_with("x.yaml (document 1)"),
                "{}",
                failure.message()
            );
        }
    }
}
