"""The optional language model behind an OpenAI-compatible API, against a fake model server over real HTTP:
a valid answer is used, anything else (timeout, HTTP error, bad JSON, off-schema, a far date) falls back to the
rules, STOP and emergencies never reach the model, and the key stays out of the logs."""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime
from datetime import time as clock
from zoneinfo import ZoneInfo

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from integration.agent.llm import LlmUnderstander
from integration.agent.policy import Memory

AUSTIN = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 5, 15, 0, tzinfo=AUSTIN)
SECRET = "sk-test-not-a-real-key-123"


class FakeModel:
    """Answers POST /v1/chat/completions with whatever the test scripted; records what it was sent."""

    def __init__(self) -> None:
        self.answer: object = {}
        self.status = 200
        self.delay = 0.0
        self.requests: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    @Request.application
    def _app(self, request: Request) -> Response:
        self.requests.append({"path": request.path, "auth": request.headers.get("Authorization"),
                              "body": request.get_json(silent=True)})
        time.sleep(self.delay)
        content = self.answer if isinstance(self.answer, str) else json.dumps(self.answer)
        body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return Response(json.dumps(body), status=self.status, mimetype="application/json")

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


@pytest.fixture
def model():
    fake = FakeModel()
    yield fake
    fake.stop()


@pytest.fixture
def understander(model) -> LlmUnderstander:
    return LlmUnderstander(api_base=model.base, api_key=SECRET, model="tiny-test", timeout=0.5)


def test_a_valid_answer_is_used_as_the_understanding(model, understander):
    model.answer = {"intent": "book", "day": "2026-03-06", "earliest": "12:00", "latest": "17:00",
                    "mentions_job": True, "unexpected": "ignored"}
    heard = understander("could a tech swing by tmrw once lunch is over", NOW, AUSTIN, Memory())
    assert understander.last_source == "model"
    assert heard.intent == "book" and heard.mentions_job
    assert (heard.when.first_day, heard.when.earliest, heard.when.latest) == (date(2026, 3, 6), clock(12), clock(17))
    [sent] = model.requests
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == f"Bearer {SECRET}"
    assert sent["body"]["model"] == "tiny-test" and sent["body"]["response_format"] == {"type": "json_object"}
    assert sent["body"]["messages"][1]["content"] == "could a tech swing by tmrw once lunch is over"


@pytest.mark.parametrize("answer", [
    "not json at all",
    {"intent": "book_everything"},                  # not one of the policy's intents
    {"intent": "book", "choice": 7},                # not a slot number
    {"intent": "book", "choice": "2"},              # a string where a number must be
    {"intent": "book", "day": "2027-01-01"},        # far outside the next 60 days
    {"intent": "book", "exact": "25:00"},           # not a clock time
    {"intent": "emergency"},                        # an emergency without its kind
    {"no_intent": True},
])
def test_an_off_schema_answer_falls_back_to_the_rules(model, understander, answer, caplog):
    model.answer = answer
    heard = understander("2", NOW, AUSTIN, Memory())
    assert understander.last_source.startswith("rules: ")
    assert (heard.intent, heard.choice) == ("book", 2)  # what the rules make of "2"
    assert SECRET not in caplog.text


def test_a_slow_model_or_an_http_error_falls_back_to_the_rules(model, understander):
    model.delay = 1.5
    started = time.monotonic()
    heard = understander("tomorrow at 3pm", NOW, AUSTIN, Memory())
    assert time.monotonic() - started < 1.4
    assert understander.last_source == "rules: ReadTimeout"
    assert heard.when.exact == clock(15)
    model.delay, model.status = 0.0, 500
    assert understander("tomorrow at 3pm", NOW, AUSTIN, Memory()).when.exact == clock(15)
    assert understander.last_source == "rules: HTTPError"


def test_stop_and_emergencies_never_go_to_the_model(model, understander):
    model.answer = {"intent": "book"}
    assert understander("STOP", NOW, AUSTIN, Memory()).intent == "stop"
    assert understander("I smell gas", NOW, AUSTIN, Memory()).emergency == "gas"
    assert model.requests == []


def test_the_key_is_not_in_the_repr(understander):
    assert SECRET not in repr(understander)
