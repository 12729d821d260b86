"""The official Python `kubernetes` client, unmodified, against a slipway API server.

Lists namespaces; creates, reads, lists, patches and watches Deployments; checks the
server's defaults and its 404 and 409 answers. Run by tests/clients/tests/python.rs with the
interpreter of the venv that scripts/install-deps makes, but it works against any server:

    SLIPWAY_URL=https://127.0.0.1:6443 SLIPWAY_TOKEN=... SLIPWAY_CA=ca.crt python3 client_check.py

SLIPWAY_TOKEN and SLIPWAY_CA are optional: the in-process test server is plain HTTP with no
authentication. Exits 0 when every check passes, 1 with the failed check on stderr otherwise.
"""

import json
import os
import secrets
import sys
import time

import kubernetes
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NAMESPACE = "default"
# (connect, read) seconds for every request: a server that stops answering fails the check
# instead of hanging it.
REQUEST_TIMEOUT = (5, 20)
# What the watch asks the server for; its read timeout must outlast it, or the client gives
# up before the server ends the stream.
WATCH_SECONDS = 15
WATCH_REQUEST_TIMEOUT = (5, WATCH_SECONDS + 10)


class CheckFailed(Exception):
    pass


def expect(what, got, want):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def api_client():
    config = client.Configuration()
    config.host = os.environ["SLIPWAY_URL"]
    token = os.environ.get("SLIPWAY_TOKEN")
    if token:
        config.api_key = {"authorization": token}
        config.api_key_prefix = {"authorization": "Bearer"}
    ca = os.environ.get("SLIPWAY_CA")
    if ca:
        config.ssl_ca_cert = ca
    return client.ApiClient(config)


def deployment(name, labels):
    return client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="nginx:1.27")]
                ),
            ),
        ),
    )


def api_error(what, call):
    """The ApiException `call` raises; CheckFailed if it succeeds."""
    try:
        call()
    except ApiException as e:
        return e
    raise CheckFailed(f"{what}: succeeded, want an ApiException")


def status_reason(e):
    try:
        return json.loads(e.body).get("reason")
    except (TypeError, ValueError) as parse:
        raise CheckFailed(f"error body is not a JSON Status: {e.body!r} ({parse})") from None


def check(api):
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    print(f"kubernetes client {kubernetes.__version__} against {api.configuration.host}")
    # Unique per run so the script can be pointed at a long-lived server more than once.
    run = secrets.token_hex(4)
    labels = {"slipway-check": run}
    selector = f"slipway-check={run}"
    first, second = f"py-web-{run}", f"py-api-{run}"

    namespaces = core.list_namespace(_request_timeout=REQUEST_TIMEOUT)
    names = {ns.metadata.name for ns in namespaces.items}
    if NAMESPACE not in names:
        raise CheckFailed(f"list namespaces: {sorted(names)} lacks {NAMESPACE!r}")
    print(f"namespaces: {sorted(names)}")

    try:
        created = apps.create_namespaced_deployment(
            NAMESPACE, deployment(first, labels), _request_timeout=REQUEST_TIMEOUT
        )
        expect("created name", created.metadata.name, first)
        if not created.metadata.uid or not created.metadata.resource_version:
            raise CheckFailed(f"created metadata lacks uid or resourceVersion: {created.metadata}")

        got = apps.read_namespaced_deployment(first, NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
        expect("read uid", got.metadata.uid, created.metadata.uid)
        expect("read labels", got.metadata.labels, labels)
        expect("defaulted spec.replicas", got.spec.replicas, 1)
        expect("defaulted spec.strategy.type", got.spec.strategy.type, "RollingUpdate")
        expect(
            "defaulted spec.strategy.rollingUpdate.maxSurge",
            got.spec.strategy.rolling_update.max_surge,
            "25%",
        )
        expect("defaulted spec.revisionHistoryLimit", got.spec.revision_history_limit, 10)
        expect("defaulted spec.progressDeadlineSeconds", got.spec.progress_deadline_seconds, 600)
        expect(
            "defaulted template restartPolicy", got.spec.template.spec.restart_policy, "Always"
        )
        expect(
            "defaulted imagePullPolicy",
            got.spec.template.spec.containers[0].image_pull_policy,
            "IfNotPresent",
        )
        expect("metadata.generation", got.metadata.generation, 1)
        if got.metadata.creation_timestamp is None:
            raise CheckFailed("read: metadata.creationTimestamp is missing")
        print(f"created and read {first}: defaults applied")

        missing = api_error(
            "read a missing deployment",
            lambda: apps.read_namespaced_deployment(
                f"absent-{run}", NAMESPACE, _request_timeout=REQUEST_TIMEOUT
            ),
        )
        expect("read missing: status", missing.status, 404)
        expect("read missing: Status reason", status_reason(missing), "NotFound")

        duplicate = api_error(
            "create a duplicate deployment",
            lambda: apps.create_namespaced_deployment(
                NAMESPACE, deployment(first, labels), _request_timeout=REQUEST_TIMEOUT
            ),
        )
        expect("create duplicate: status", duplicate.status, 409)
        expect("create duplicate: Status reason", status_reason(duplicate), "AlreadyExists")
        print("404 for a missing name, 409 for a duplicate")

        listed = apps.list_namespaced_deployment(
            NAMESPACE, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
        )
        expect("list by label: names", [d.metadata.name for d in listed.items], [first])
        list_rv = listed.metadata.resource_version
        if not list_rv:
            raise CheckFailed("list: metadata.resourceVersion is missing")
        print(f"listed {first} by label at resourceVersion {list_rv}")

        # Made after the list and before the watch opens: the watch must replay it from
        # the list's resourceVersion, which is how every informer avoids missing changes.
        patched = apps.patch_namespaced_deployment(
            first, NAMESPACE, {"spec": {"replicas": 3}}, _request_timeout=REQUEST_TIMEOUT
        )
        expect("patched spec.replicas", patched.spec.replicas, 3)
        expect("patched metadata.generation", patched.metadata.generation, 2)

        watch_from(apps, selector, list_rv, first, second, labels)
    finally:
        for name in (first, second):
            try:
                apps.delete_namespaced_deployment(
                    name, NAMESPACE, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as e:
                if e.status != 404:
                    raise


def watch_from(apps, selector, list_rv, first, second, labels):
    """Watches from `list_rv`: the replayed patch of `first`, then `second`, created while
    the watch is known to be open (it has delivered an event)."""
    deadline = time.monotonic() + WATCH_SECONDS
    seen = []
    modified = added = False
    w = watch.Watch()
    try:
        for event in w.stream(
            apps.list_namespaced_deployment,
            NAMESPACE,
            label_selector=selector,
            resource_version=list_rv,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=WATCH_REQUEST_TIMEOUT,
        ):
            kind, obj = event["type"], event["object"]
            if kind == "BOOKMARK":
                continue
            seen.append((kind, obj.metadata.name))
            if kind == "MODIFIED" and obj.metadata.name == first:
                expect("watched MODIFIED spec.replicas", obj.spec.replicas, 3)
                modified = True
                apps.create_namespaced_deployment(
                    NAMESPACE, deployment(second, labels), _request_timeout=REQUEST_TIMEOUT
                )
            elif kind == "ADDED" and obj.metadata.name == second:
                if not modified:
                    raise CheckFailed(f"watch: {second} ADDED before {first} MODIFIED: {seen}")
                expect("watched ADDED strategy.type", obj.spec.strategy.type, "RollingUpdate")
                added = True
                break
            if time.monotonic() > deadline:
                break
    finally:
        w.stop()
    elapsed = WATCH_SECONDS - (deadline - time.monotonic())
    if not modified:
        raise CheckFailed(
            f"watch from resourceVersion {list_rv}: no MODIFIED for {first}; the stream "
            f"ended after {elapsed:.1f}s of {WATCH_SECONDS}s with events {seen}. "
            + raw_watch_answer(apps, selector, list_rv)
        )
    if not added:
        raise CheckFailed(
            f"watch: no ADDED for {second}; the stream ended after {elapsed:.1f}s of "
            f"{WATCH_SECONDS}s with events {seen}"
        )
    print(f"watch from {list_rv}: {seen}")


def raw_watch_answer(apps, selector, list_rv):
    """The server's answer to the watch request the client made, undecoded: the client
    drops a body that is not newline-terminated watch events without a word."""
    resp = apps.list_namespaced_deployment(
        NAMESPACE,
        label_selector=selector,
        resource_version=list_rv,
        timeout_seconds=1,
        watch=True,
        _preload_content=False,
        _request_timeout=REQUEST_TIMEOUT,
    )
    try:
        return (
            f"The same request ({resp.geturl()}) answers {resp.status} "
            f"{dict(resp.headers)} {resp.data[:300]!r}"
        )
    finally:
        resp.release_conn()


def main():
    api = api_client()
    try:
        check(api)
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except ApiException as e:
        print(
            f"FAILED: unexpected API error {e.status} {e.reason}\n"
            f"  headers: {dict(e.headers or {})}\n  body: {e.body}",
            file=sys.stderr,
        )
        return 1
    finally:
        api.close()
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
