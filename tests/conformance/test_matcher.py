"""Unit tests of the requirement-file semantics implemented in matcher.py."""

from __future__ import annotations

from matcher import Bindings, check_logs, check_result, history_matches, match_history


def ev(event_id: int, event_type: str, **fields):
    return {"EventId": event_id, "EventType": event_type, "EventTimestamp": 1.0, **fields}


def test_placeholders_bind_once_and_must_agree():
    expected = [
        {"EventId": 2, "EventType": "StepStarted", "Id": "${ID1}"},
        {"EventId": 3, "EventType": "StepSucceeded", "Id": "${ID1}"},
    ]
    b = Bindings()
    assert match_history(expected, [ev(2, "StepStarted", Id="a"), ev(3, "StepSucceeded", Id="a")], b) == []
    assert b.values["ID1"] == "a"
    errors = match_history(expected, [ev(2, "StepStarted", Id="a"), ev(3, "StepSucceeded", Id="b")], Bindings())
    assert len(errors) == 1 and "ID1" in errors[0]


def test_generated_variables_are_substituted_and_enforced():
    b = Bindings.from_variables({"INPUT_1": "${GEN_STR:8}", "FIXED": "abc"})
    value = b.values["INPUT_1"]
    assert len(value) == 8 and value.isalnum()
    assert b.substitute({"k": ["x ${INPUT_1} y", "${FIXED}", "${UNBOUND}"]}) == {
        "k": [f"x {value} y", "abc", "${UNBOUND}"]
    }
    expected = [{"EventId": 2, "Name": "${INPUT_1}", "Details": {"Result": {"Payload": '"${INPUT_1}"'}}}]
    good = [ev(2, "X", Name=value, Details={"Result": {"Payload": f'"{value}"', "Truncated": False}})]
    bad = [ev(2, "X", Name="other", Details={"Result": {"Payload": '"other"'}})]
    assert match_history(expected, good, b.copy()) == []
    assert len(match_history(expected, bad, b.copy())) == 2


def test_regex_wildcard_and_dont_care():
    expected = [
        {
            "EventId": 3,
            "RetryDetails": {"NextAttemptDelaySeconds": "${/^[0-5]$/}", "CurrentAttempt": "*"},
            "Error": {},
        }
    ]
    assert (
        match_history(
            expected,
            [ev(3, "X", RetryDetails={"NextAttemptDelaySeconds": 4, "CurrentAttempt": 1}, Error=None)],
            Bindings(),
        )
        == []
    )
    assert match_history(
        expected, [ev(3, "X", RetryDetails={"NextAttemptDelaySeconds": 7, "CurrentAttempt": 1}, Error={})], Bindings()
    )
    # "*" and {} still require the key to be present
    errors = match_history(expected, [ev(3, "X", RetryDetails={"NextAttemptDelaySeconds": 1})], Bindings())
    assert any("CurrentAttempt" in e for e in errors) and any("Error" in e for e in errors)


def test_events_matched_by_id_and_extra_events_ignored():
    expected = [{"EventId": 2, "EventType": "WaitStarted"}, {"EventId": 4, "EventType": "WaitSucceeded"}]
    actual = [ev(1, "ExecutionStarted"), ev(2, "WaitStarted"), ev(3, "InvocationCompleted"), ev(4, "WaitSucceeded")]
    assert history_matches(expected, actual, Bindings())
    assert not history_matches(expected, actual[:3], Bindings())
    assert not history_matches([{"EventId": 3, "EventType": "WaitSucceeded"}], actual, Bindings())


def test_lists_compare_element_wise():
    assert match_history([{"EventId": 1, "L": [1, "*"]}], [ev(1, "X", L=[1, 2])], Bindings()) == []
    assert match_history([{"EventId": 1, "L": [1, "*"]}], [ev(1, "X", L=[1, 2, 3])], Bindings())


def test_expected_result():
    b = Bindings.from_variables({"I": "${GEN_STR:4}"})
    want = {"ExecutionStatus": "SUCCEEDED", "Result": "Hello, ${I}!"}
    assert check_result(want, "SUCCEEDED", f'"Hello, {b.values["I"]}!"', b) == []
    assert check_result(want, "SUCCEEDED", '"Hello, x!"', b)
    assert check_result(want, "FAILED", None, b)
    assert check_result({"ExecutionStatus": "FAILED"}, "FAILED", None, b) == []
    assert check_result({"ExecutionStatus": "SUCCEEDED", "Result": None}, "SUCCEEDED", "null", b) == []
    # a non-JSON result is compared as text
    assert check_result({"ExecutionStatus": "SUCCEEDED", "Result": "raw"}, "SUCCEEDED", "raw", b) == []


def test_expected_logs_counts_and_order():
    records = [
        {"plugin": "P", "hook": "invocation-start", "first": True},
        {"message": "Greeting step running for: abc"},
        {"plugin": "P", "hook": "invocation-end", "status": "SUCCEEDED"},
    ]
    spec = [
        {"match": {"plugin": "P", "hook": "invocation-start", "first": True}, "count": 1},
        {"match": {"message": "/running for: abc/"}, "count": 1, "after": [{"hook": "invocation-start"}]},
        {"match": {"hook": "invocation-end", "status": "SUCCEEDED"}, "count": 1, "after": [{"message": "/running/"}]},
        {"match": {"plugin": "P", "hook": "invocation-start", "first": False}, "count": 0},
    ]
    assert check_logs(spec, records, Bindings()) == []
    assert (
        check_logs([{"match": {"hook": "invocation-start"}, "before": [{"message": "/running/"}]}], records, Bindings())
        == []
    )
    assert check_logs(
        [{"match": {"hook": "invocation-end"}, "before": [{"message": "/running/"}]}], records, Bindings()
    )
    assert check_logs([{"match": {"hook": "nothing"}}], records, Bindings())  # default: at least one
