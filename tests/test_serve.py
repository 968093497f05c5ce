"""guard-sdk serve on 127.0.0.1: the official openai client gets our verdicts in its moderation schema, /v1/classify
gives the full verdict, and every bad request gets a JSON error with its status, never a traceback. Each server
is stopped when its test ends, on failure too."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import httpx
import pytest

from guard_sdk import Guard, InputError
from guard_sdk.categories import OPENAI_MODERATION
from guard_sdk.serve.app import Limits, create_app

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS


@contextlib.contextmanager
def serving(guard, **options):
    """The app under uvicorn on a free port of 127.0.0.1, in a thread; its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(guard, **options), host="127.0.0.1", port=0,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        assert host == "127.0.0.1"
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def guard(categories_bundle):
    return Guard.load(categories_bundle)


def test_the_openai_client_moderates_through_it_as_classify_does(guard):
    from openai import OpenAI

    texts = UNSAFE_TEXTS[:4] + SAFE_TEXTS[:4]
    expected = guard.classify_batch(texts)
    with serving(guard, api_key="s3cret") as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        answer = client.moderations.create(input=texts, model="anything")
        one = client.moderations.create(input=texts[0])
    assert answer.model == "anything" and one.model == guard.manifest.name and len(answer.results) == len(texts)
    for result, verdict in zip(answer.results, expected):
        scores = result.category_scores.model_dump(by_alias=True)
        flags = result.categories.model_dump(by_alias=True)
        assert result.flagged == verdict.unsafe and set(scores) == set(OPENAI_MODERATION)
        assert scores["violence"] == pytest.approx(verdict.categories["violent_crimes"])
        assert scores["hate"] == pytest.approx(verdict.categories["hate"])
        assert flags["violence"] == ("violent_crimes" in verdict.violations)
        assert scores["sexual/minors"] == 0.0 and not flags["sexual/minors"]  # a category this bundle lacks
    assert one.results[0].flagged == expected[0].unsafe


def test_classify_gives_the_full_verdict_of_pairs_and_a_policy(guard):
    pairs = [{"prompt": UNSAFE_TEXTS[0], "response": "Sure, here is how."}, {"prompt": SAFE_TEXTS[0]}]
    expected = guard.classify_batch([p["prompt"] for p in pairs], [p.get("response") for p in pairs])
    allowed = guard.classify(UNSAFE_TEXTS[0], policy={"allow": ["violent_crimes"]})
    with serving(guard) as url:
        many = httpx.post(f"{url}/v1/classify", json={"inputs": pairs}).json()
        one = httpx.post(f"{url}/v1/classify", json={"prompt": UNSAFE_TEXTS[0],
                                                     "policy": {"allow": ["violent_crimes"]}}).json()
        bad_policy = httpx.post(f"{url}/v1/classify", json={"prompt": "hi", "policy": {"allow": ["nonsense"]}})
        health = httpx.get(f"{url}/healthz").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert many["results"] == [{**v.to_dict(), "violations": list(v.violations)} for v in expected]
    assert one["unsafe"] == allowed.unsafe and one["violations"] == list(allowed.violations)
    assert health == {"status": "ok", "model": guard.manifest.name, "categories": guard.categories}
    assert bad_policy.status_code == 422 and "nonsense" in bad_policy.json()["error"]["message"]
    assert 'guard_requests_total{endpoint="/v1/classify",status="200"} 2.0' in metrics
    assert "guard_request_seconds_bucket" in metrics and "guard_queue_depth 0.0" in metrics


@pytest.mark.parametrize("request_args,status,message", [
    ({"content": b"{not json"}, 400, "not JSON"),
    ({"json": {"text": "hi"}}, 422, "expected"),
    ({"json": {"input": []}}, 422, "non-empty list"),
    ({"json": {"input": ["a", 3]}}, 422, "strings"),
    ({"json": {"input": ["hi"] * 5}}, 413, "5 inputs; the limit is 4"),
    ({"content": b'{"input": "' + b"x" * 3000 + b'"}'}, 413, "limit"),
    ({"content": b'{"input": "bad \\udcff"}'}, 422, "not valid UTF-8"),  # a lone surrogate, escaped in JSON
    ({"content": b'{"input": "hi", "model": "\\ud800"}'}, 422, "model must be a string"),  # not echoed back
    ({"json": {"input": "hi", "model": {"a": 1}}}, 422, "model must be a string"),
])
def test_bad_requests_get_json_errors(guard, request_args, status, message):
    with serving(guard, limits=Limits(max_body_bytes=2000, max_batch=4)) as url:
        reply = httpx.post(f"{url}/v1/moderations", **request_args)
    assert reply.status_code == status and message in reply.json()["error"]["message"], reply.text


def test_keys_unknown_routes_and_a_full_queue(guard, monkeypatch):
    """One input being scored (held until released) and one waiting fill a queue of one: the next gets 429, and
    both held ones are answered once it drains."""
    from concurrent.futures import ThreadPoolExecutor

    entered, release = threading.Event(), threading.Event()
    scored = guard.classify_batch

    def held(*args, **kwargs):
        entered.set()
        assert release.wait(60)
        return scored(*args, **kwargs)

    monkeypatch.setattr(guard, "classify_batch", held)
    key = {"Authorization": "Bearer k"}
    with serving(guard, api_key="k", limits=Limits(max_batch=1, max_queue=1, workers=1)) as url:
        assert httpx.post(f"{url}/v1/moderations", json={"input": "hi"}).status_code == 401
        wrong = httpx.post(f"{url}/v1/moderations", json={"input": "hi"}, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(httpx.post, f"{url}/v1/moderations", json={"input": "one"}, headers=key, timeout=60)
            assert entered.wait(30)
            second = pool.submit(httpx.post, f"{url}/v1/moderations", json={"input": "two"}, headers=key, timeout=60)
            deadline = time.monotonic() + 30
            while "guard_queue_depth 1.0" not in httpx.get(f"{url}/metrics", headers=key).text:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.02)
            busy = httpx.post(f"{url}/v1/moderations", json={"input": "three"}, headers=key)
            release.set()
            answered = [first.result().status_code, second.result().status_code]
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1" and answered == [200, 200]
        assert httpx.get(f"{url}/healthz").status_code == 200  # health needs no key
        assert httpx.get(f"{url}/").status_code == 200  # nor the static page, whose requests do
        assert httpx.get(f"{url}/metrics").status_code == 401
        missing = httpx.get(f"{url}/v1/nothing")
        assert missing.status_code == 404 and "error" in missing.json()


def test_json_nested_too_deep_to_parse_is_a_bad_request(guard):
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError, not ValueError
    with serving(guard) as url:
        reply = httpx.post(f"{url}/v1/moderations", content=deep)
    assert reply.status_code == 400 and "nested too deep" in reply.json()["error"]["message"], reply.text


def test_a_queue_that_cannot_hold_one_full_request_is_refused_at_start(guard):
    with pytest.raises(InputError, match="max_queue"):
        create_app(guard, limits=Limits(max_batch=64, max_queue=10))


@pytest.mark.parametrize("body,message", [
    ({"prompt": "hi", "policy": "/etc/hostname"}, "policy must be a JSON object"),  # never opened as a file
    ({"prompt": "hi", "policy": {"allow": ["\ud800"]}}, "\\ud800"),  # the message escapes what it quotes
    ({"prompt": "hi", "policy": {"thresholds": {"hate": float("nan")}}}, "outside [0, 1]"),
])
def test_a_requests_policy_is_a_json_object_checked_before_scoring(guard, body, message):
    with serving(guard) as url:
        reply = httpx.post(f"{url}/v1/classify", content=json.dumps(body).encode())
    assert reply.status_code == 422 and message in reply.json()["error"]["message"], reply.text


def test_a_response_streamed_over_the_websocket_is_judged_chunk_by_chunk(guard):
    import json as jsonlib

    from websockets.sync.client import connect

    prompt, chunks = UNSAFE_TEXTS[0], ["Sure, ", "here is how: ", "first gather the parts. "]
    local = guard.stream(prompt)
    expected = [local.feed(c) for c in chunks]
    with serving(guard, api_key="k") as url:
        socket_url = url.replace("http://", "ws://") + "/v1/moderations/stream"
        with connect(socket_url, additional_headers={"Authorization": "Bearer k"}) as ws:
            ws.send(jsonlib.dumps({"prompt": prompt}))
            answers = []
            for chunk in chunks:
                ws.send(jsonlib.dumps({"chunk": chunk}))
                answers.append(jsonlib.loads(ws.recv(timeout=30)))
            ws.send(jsonlib.dumps({"end": True}))
        refused = []
        for first in (jsonlib.dumps({"text": "no prompt"}), b'{"prompt": "hi", "policy": "/etc/hostname"}',
                      "[" * 100_000 + "]" * 100_000):  # a binary frame is read as UTF-8 JSON too
            with connect(socket_url, additional_headers={"Authorization": "Bearer k"}) as ws:
                ws.send(first)
                refused.append(jsonlib.loads(ws.recv(timeout=30))["error"]["message"])
        with pytest.raises(Exception, match="1008|missing or wrong API key|403"):
            with connect(socket_url) as ws:
                ws.recv(timeout=30)
    for answer, step in zip(answers, expected):
        assert answer["verdict"] == {**step.verdict.to_dict(), "violations": list(step.verdict.violations)}
        assert answer["chunk"] == step.chunk and answer["first_unsafe_chunk"] == step.first_unsafe_chunk
    assert "the first message must be" in refused[0] and "policy must be a JSON object" in refused[1]
    assert "nested too deep" in refused[2]


def test_concurrent_clients_get_classifys_verdicts_each_once(guard):
    """64 clients at once, each with its own texts: every answer is classify()'s on that client's texts, none lost
    or crossed, though their inputs shared micro-batches."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"{t} ({i})" for i in range(8) for t in UNSAFE_TEXTS + SAFE_TEXTS][:64]
    expected = {t: v.to_dict() for t, v in zip(texts, guard.classify_batch(texts))}
    with serving(guard, limits=Limits(max_batch=16, workers=2)) as url, httpx.Client() as client:
        def ask(text):
            return text, client.post(f"{url}/v1/classify", json={"prompt": text}).json()

        with ThreadPoolExecutor(64) as pool:
            answers = dict(pool.map(ask, texts))
        metrics = client.get(f"{url}/metrics").text
    assert len(answers) == 64
    for text, answer in answers.items():
        assert answer == {**expected[text], "violations": list(expected[text]["violations"])}
    assert 'guard_requests_total{endpoint="/v1/classify",status="200"} 64.0' in metrics


def test_the_serve_command_names_the_port_it_picked(categories_bundle):
    """--port 0 binds a free port, and the line printed at start names it (uvicorn's own line is silenced)."""
    import re
    import subprocess
    import sys

    command = [sys.executable, "-m", "guard_sdk.cli", "serve", "--port", "0", "--bundle", str(categories_bundle)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+) ", line)
        assert found and found.group(1) != "0", line
        health = httpx.get(f"http://127.0.0.1:{found.group(1)}/healthz", timeout=30).json()
        assert health["model"] == Guard.load(categories_bundle).manifest.name
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_load_test_serves_from_its_own_process_and_writes_its_table(bert_bundle, tmp_path):
    from guard_sdk.bench.load import BEGIN, load_test, to_markdown, write_results

    result = load_test(bert_bundle, threads=1, clients=(1, 4), requests=24, seconds=30)
    rows = result["rows"]
    assert [r["setting"] for r in rows] == ["in-process classify() loop", "guard-sdk serve, 1 client",
                                           "guard-sdk serve, 4 clients"]
    assert all(r["requests"] == 24 and r["errors"] == 0 and r["per_second"] > 0 for r in rows)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n\nkept\n")
    write_results(result, results)
    text = results.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n") and BEGIN in text and to_markdown(result).strip() in text


def test_the_playground_page_shows_the_verdict_in_headless_chromium(guard):
    """Debian's Chromium (make browser-setup) loads the page offline, which fills the form from its URL and
    submits it; the verdict, the view and a bar per category are in the page it leaves; the screenshot is kept
    in build/test-artifacts/playground.png."""
    import re
    import shutil
    import subprocess
    import urllib.parse
    from pathlib import Path

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("needs Debian's chromium: make browser-setup")
    prompt = UNSAFE_TEXTS[0]
    expected = guard.classify(prompt)
    shot = Path(__file__).resolve().parents[1] / "build" / "test-artifacts" / "playground.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=20000"]
    with serving(guard) as url:
        page = f"{url}/?prompt={urllib.parse.quote(prompt)}"
        dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
        subprocess.run([*flags, "--window-size=900,900", f"--screenshot={shot}", page], capture_output=True,
                       timeout=120)
        raw = httpx.get(url).text
    with serving(guard, api_key="k") as url:  # the page is open; its request is refused until a key is typed
        keyed = subprocess.run([*flags, "--dump-dom", f"{url}/?prompt=hi"], capture_output=True, text=True,
                               timeout=120).stdout
    assert '<div id="label">Error 401</div>' in keyed and '<div id="keyfield">' in keyed, keyed[-2000:]
    assert '<div id="keyfield" hidden="">' in dom  # no key asked where none is needed
    assert "<script src=" not in raw and "http" not in re.sub(r"<!--.*?-->", "", raw).split("<script>")[0]  # offline
    label = re.search(r'<div id="label">(\w+)</div>', dom)
    assert label and label.group(1) == ("Unsafe" if expected.unsafe else "Safe"), dom[-2000:]
    assert f"P(unsafe) {expected.score:.3f}" in dom and f"view: {expected.view}" in dom
    assert dom.count('class="bar') == len(guard.categories) and all(name in dom for name in guard.categories)
    assert shot.is_file() and shot.stat().st_size > 10_000
