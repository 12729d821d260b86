//! The `paths` of a group-version document, shaped like upstream's so that kubectl finds, per
//! kind, a PATCH operation tagged with `x-kubernetes-group-version-kind` that accepts
//! `fieldValidation` (then it lets the server validate) and a strategic-merge request body
//! (then it computes strategic merge patches from our schemas instead of probing v2).

use k8s_openapi::Resource;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Binding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Patch, Status};
use k8s_openapi::schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::catalog::{GroupVersion, Kind, Subresource, Verbs};

/// The content types of PATCH request bodies, all described by meta/v1 Patch.
const PATCH_CONTENT_TYPES: [&str; 4] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Where component schemas live; every `$ref` of a document starts so.
pub(crate) const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";

/// A JSON reference to a component schema.
pub(crate) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMA_REF_PREFIX}{name}") })
}

/// The `$ref` schema that schemars returned for a registered type, as JSON.
fn ref_of(schema: &Schema) -> Value {
    schema.as_value().clone()
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "description": description, "schema": schema })
}

fn string_schema() -> Value {
    json!({ "type": "string", "uniqueItems": true })
}

fn boolean_schema() -> Value {
    json!({ "type": "boolean", "uniqueItems": true })
}

fn integer_schema() -> Value {
    json!({ "type": "integer", "uniqueItems": true })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "path", "required": true, "description": description,
        "schema": string_schema(),
    })
}

fn pretty() -> Value {
    query(
        "pretty",
        "If 'true', then the output is pretty printed.",
        string_schema(),
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        string_schema(),
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
        string_schema(),
    )
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
        string_schema(),
    )
}

fn force() -> Value {
    query(
        "force",
        "Force is going to \"force\" Apply requests: it re-acquires conflicting fields owned by other people. Must be unset for non-apply patch requests.",
        boolean_schema(),
    )
}

/// The parameters of a write (create, replace).
fn write_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

fn patch_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation(), force()]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "The duration in seconds before the object should be deleted. Zero means delete immediately.",
            integer_schema(),
        ),
        query(
            "orphanDependents",
            "Deprecated: use propagationPolicy. Whether the dependent objects should be orphaned.",
            boolean_schema(),
        ),
        query(
            "propagationPolicy",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
            string_schema(),
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
            boolean_schema(),
        ),
        query(
            "continue",
            "The continue option should be set when retrieving more results from the server.",
            string_schema(),
        ),
        query(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
            string_schema(),
        ),
        query(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
            string_schema(),
        ),
        query(
            "limit",
            "limit is a maximum number of responses to return for a list call.",
            integer_schema(),
        ),
        query(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
            string_schema(),
        ),
        query(
            "resourceVersionMatch",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
            string_schema(),
        ),
        query(
            "sendInitialEvents",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
            boolean_schema(),
        ),
        query(
            "timeoutSeconds",
            "Timeout for the list/watch call.",
            integer_schema(),
        ),
        query(
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
            boolean_schema(),
        ),
    ]
}

fn log_params() -> Vec<Value> {
    vec![
        query(
            "container",
            "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
            string_schema(),
        ),
        query(
            "follow",
            "Follow the log stream of the pod.",
            boolean_schema(),
        ),
        query(
            "insecureSkipTLSVerifyBackend",
            "Do not verify the serving certificate of the backend.",
            boolean_schema(),
        ),
        query(
            "limitBytes",
            "The number of bytes to read from the server before terminating the log output.",
            integer_schema(),
        ),
        query(
            "previous",
            "Return previous terminated container logs.",
            boolean_schema(),
        ),
        query(
            "sinceSeconds",
            "A relative time in seconds before the current time from which to show logs.",
            integer_schema(),
        ),
        query(
            "tailLines",
            "The number of lines from the end of the logs to show.",
            integer_schema(),
        ),
        query(
            "timestamps",
            "If true, add an RFC3339 timestamp at the beginning of every line of log output.",
            boolean_schema(),
        ),
    ]
}

fn json_body(schema: &Value) -> Value {
    json!({ "content": { "*/*": { "schema": schema } }, "required": true })
}

fn patch_body(patch: &Value) -> Value {
    let content: Map<String, Value> = PATCH_CONTENT_TYPES
        .iter()
        .map(|ct| ((*ct).to_owned(), json!({ "schema": patch })))
        .collect();
    json!({ "content": content, "required": true })
}

fn responses(codes: &[(&str, &str)], schema: &Value) -> Value {
    let mut out: Map<String, Value> = codes
        .iter()
        .map(|(code, description)| {
            (
                (*code).to_owned(),
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": schema } },
                }),
            )
        })
        .collect();
    out.insert("401".to_owned(), json!({ "description": "Unauthorized" }));
    Value::Object(out)
}

const OK: (&str, &str) = ("200", "OK");
const CREATED: (&str, &str) = ("201", "Created");
const ACCEPTED: (&str, &str) = ("202", "Accepted");

/// What every operation has; the rest is added by the caller.
struct Operation<'a> {
    gv: &'a GroupVersion,
    verb: &'static str,
    action: &'static str,
    name: String,
    description: String,
    gvk: Value,
}

impl Operation<'_> {
    fn build(self, parameters: Vec<Value>, request_body: Option<Value>, responses: Value) -> Value {
        let mut op = json!({
            "description": self.description,
            "operationId": format!("{}{}{}", self.verb, self.gv.operation_infix(), self.name),
            "tags": [self.gv.tag()],
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
            "responses": responses,
        });
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = request_body {
            op["requestBody"] = body;
        }
        op
    }
}

/// The component `$ref`s shared by all operations of one document.
struct Shared {
    status: Value,
    delete_options: Value,
    patch: Value,
}

/// Builds the `paths` object of one group-version, registering every schema an operation
/// refers to with `generator`.
pub(crate) fn paths(gv: &GroupVersion, generator: &mut SchemaGenerator) -> Map<String, Value> {
    let shared = Shared {
        status: ref_of(&generator.subschema_for::<Status>()),
        delete_options: ref_of(&generator.subschema_for::<DeleteOptions>()),
        patch: ref_of(&generator.subschema_for::<Patch>()),
    };
    let prefix = format!("/{}", gv.path());
    let mut out = Map::new();
    for kind in &gv.kinds {
        let object = ref_of(&(kind.register)(generator));
        let builder = KindPaths {
            gv,
            kind,
            object: &object,
            shared: &shared,
        };
        builder.add(&prefix, generator, &mut out);
    }
    out
}

struct KindPaths<'a> {
    gv: &'a GroupVersion,
    kind: &'a Kind,
    object: &'a Value,
    shared: &'a Shared,
}

impl KindPaths<'_> {
    fn gvk(&self) -> Value {
        gvk(self.kind.group, self.kind.version, self.kind.kind)
    }

    fn op(
        &self,
        verb: &'static str,
        action: &'static str,
        name: String,
        description: String,
    ) -> Operation<'_> {
        Operation {
            gv: self.gv,
            verb,
            action,
            name,
            description,
            gvk: self.gvk(),
        }
    }

    /// `Namespaced` in upstream's operation ids for namespaced kinds.
    fn scoped_name(&self, suffix: &str) -> String {
        let scope = if self.kind.namespaced {
            "Namespaced"
        } else {
            ""
        };
        format!("{scope}{}{suffix}", self.kind.kind)
    }

    fn add(&self, prefix: &str, generator: &mut SchemaGenerator, out: &mut Map<String, Value>) {
        let kind = self.kind;
        let namespace_param = path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        );
        let (collection, mut scope_params) = if kind.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", kind.plural),
                vec![namespace_param],
            )
        } else {
            (format!("{prefix}/{}", kind.plural), Vec::new())
        };
        scope_params.push(pretty());
        let item = format!("{collection}/{{name}}");
        let mut item_params = vec![path_param("name", &format!("name of the {}", kind.kind))];
        item_params.extend(scope_params.iter().cloned());

        let mut collection_ops = Map::new();
        collection_ops.insert("post".to_owned(), self.create());
        let list = match kind.list_schema_name() {
            Some(name) if kind.verbs != Verbs::CreateOnly => schema_ref(&name),
            _ => {
                collection_ops.insert("parameters".to_owned(), Value::Array(scope_params));
                out.insert(collection, Value::Object(collection_ops));
                return;
            }
        };
        collection_ops.insert("get".to_owned(), self.list(&list, self.scoped_name("")));
        if kind.verbs == Verbs::All {
            collection_ops.insert("delete".to_owned(), self.delete_collection());
        }
        collection_ops.insert("parameters".to_owned(), Value::Array(scope_params));
        out.insert(collection, Value::Object(collection_ops));

        if kind.namespaced {
            let all = json!({
                "get": self.list(&list, format!("{}ForAllNamespaces", kind.kind)),
                "parameters": [pretty()],
            });
            out.insert(format!("{prefix}/{}", kind.plural), all);
        }

        let mut item_ops = Map::new();
        item_ops.insert("get".to_owned(), self.read(self.object, self.gvk(), ""));
        item_ops.insert("put".to_owned(), self.replace(self.object, self.gvk(), ""));
        item_ops.insert("patch".to_owned(), self.patch(self.object, self.gvk(), ""));
        item_ops.insert("delete".to_owned(), self.delete());
        item_ops.insert("parameters".to_owned(), Value::Array(item_params.clone()));
        out.insert(item.clone(), Value::Object(item_ops));

        for &sub in kind.subresources {
            let mut ops = self.subresource(sub, generator);
            ops.insert("parameters".to_owned(), Value::Array(item_params.clone()));
            out.insert(format!("{item}/{}", sub.segment()), Value::Object(ops));
        }
    }

    fn create(&self) -> Value {
        self.op(
            "create",
            "post",
            self.scoped_name(""),
            format!("create a {}", self.kind.kind),
        )
        .build(
            write_params(),
            Some(json_body(self.object)),
            responses(&[OK, CREATED, ACCEPTED], self.object),
        )
    }

    fn list(&self, list: &Value, name: String) -> Value {
        self.op(
            "list",
            "list",
            name,
            format!("list or watch objects of kind {}", self.kind.kind),
        )
        .build(list_params(), None, responses(&[OK], list))
    }

    fn delete_collection(&self) -> Value {
        let mut params = delete_params();
        params.extend(list_params());
        self.op(
            "delete",
            "deletecollection",
            format!("Collection{}", self.scoped_name("")),
            format!("delete collection of {}", self.kind.kind),
        )
        .build(
            params,
            Some(json_body(&self.shared.delete_options)),
            responses(&[OK], &self.shared.status),
        )
    }

    fn read(&self, schema: &Value, gvk: Value, suffix: &str) -> Value {
        let mut op = self.op(
            "read",
            "get",
            self.scoped_name(suffix),
            format!("read the specified {}{suffix}", self.kind.kind),
        );
        op.gvk = gvk;
        op.build(Vec::new(), None, responses(&[OK], schema))
    }

    fn replace(&self, schema: &Value, gvk: Value, suffix: &str) -> Value {
        let mut op = self.op(
            "replace",
            "put",
            self.scoped_name(suffix),
            format!("replace the specified {}{suffix}", self.kind.kind),
        );
        op.gvk = gvk;
        op.build(
            write_params(),
            Some(json_body(schema)),
            responses(&[OK, CREATED], schema),
        )
    }

    fn patch(&self, schema: &Value, gvk: Value, suffix: &str) -> Value {
        let mut op = self.op(
            "patch",
            "patch",
            self.scoped_name(suffix),
            format!("partially update the specified {}{suffix}", self.kind.kind),
        );
        op.gvk = gvk;
        op.build(
            patch_params(),
            Some(patch_body(&self.shared.patch)),
            responses(&[OK, CREATED], schema),
        )
    }

    fn delete(&self) -> Value {
        let returned = if self.kind.delete_returns_object {
            self.object
        } else {
            &self.shared.status
        };
        self.op(
            "delete",
            "delete",
            self.scoped_name(""),
            format!("delete a {}", self.kind.kind),
        )
        .build(
            delete_params(),
            Some(json_body(&self.shared.delete_options)),
            responses(&[OK, ACCEPTED], returned),
        )
    }

    /// The operations of a subresource path, by method.
    fn subresource(&self, sub: Subresource, generator: &mut SchemaGenerator) -> Map<String, Value> {
        match sub {
            Subresource::Status => self.read_write(self.object, &self.gvk(), "Status"),
            Subresource::Scale => {
                let scale = ref_of(&generator.subschema_for::<Scale>());
                self.read_write(&scale, &gvk_of::<Scale>(), "Scale")
            }
            Subresource::Log => {
                let text = json!({ "type": "string" });
                let op = self.op(
                    "read",
                    "get",
                    self.scoped_name("Log"),
                    format!("read log of the specified {}", self.kind.kind),
                );
                let mut responses = responses(&[OK], &text);
                responses["200"]["content"] = json!({ "text/plain": { "schema": text } });
                one("get", op.build(log_params(), None, responses))
            }
            Subresource::Binding => {
                let binding = ref_of(&generator.subschema_for::<Binding>());
                let mut op = self.op(
                    "create",
                    "post",
                    self.scoped_name("Binding"),
                    format!("create binding of a {}", self.kind.kind),
                );
                op.gvk = gvk_of::<Binding>();
                one(
                    "post",
                    op.build(
                        write_params(),
                        Some(json_body(&binding)),
                        responses(&[OK, CREATED, ACCEPTED], &binding),
                    ),
                )
            }
            Subresource::Finalize => {
                let op = self.op(
                    "replace",
                    "put",
                    self.scoped_name("Finalize"),
                    format!("replace finalize of the specified {}", self.kind.kind),
                );
                one(
                    "put",
                    op.build(
                        write_params(),
                        Some(json_body(self.object)),
                        responses(&[OK, CREATED], self.object),
                    ),
                )
            }
        }
    }

    fn read_write(&self, schema: &Value, gvk: &Value, suffix: &str) -> Map<String, Value> {
        Map::from_iter([
            ("get".to_owned(), self.read(schema, gvk.clone(), suffix)),
            ("put".to_owned(), self.replace(schema, gvk.clone(), suffix)),
            ("patch".to_owned(), self.patch(schema, gvk.clone(), suffix)),
        ])
    }
}

/// A path item's operations when it has only one.
fn one(method: &str, operation: Value) -> Map<String, Value> {
    Map::from_iter([(method.to_owned(), operation)])
}

fn gvk_of<T: Resource>() -> Value {
    gvk(T::GROUP, T::VERSION, T::KIND)
}
