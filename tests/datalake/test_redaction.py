import pytest

from datalake.redaction import MASK, redact, redact_text

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("plain message", (), "plain message"),
        ("postgres://robson:pw123@db:5432/x", (), f"postgres://robson:{MASK}@db:5432/x"),
        ("redis://:hunter2@cache:6379/0", (), f"redis://:{MASK}@cache:6379/0"),
        ("s3://bucket/prefix/key", (), "s3://bucket/prefix/key"),
        ("failed: aws_secret_access_key=AKIAXYZ", (), f"failed: aws_secret_access_key={MASK}"),
        ("password: letmein, retry", (), f"password: {MASK}, retry"),
        ("token=abc;next", (), f"token={MASK};next"),
        ("denied for wJalrXUtnFEMI/K7MDENG", ("wJalrXUtnFEMI/K7MDENG",), f"denied for {MASK}"),
        ("short ab", ("",), "short ab"),
        ("quantity=5 price=10", (), "quantity=5 price=10"),
    ],
)
def test_redact_text(text, secrets, expected):
    assert redact_text(text, secrets) == expected


def test_redact_nested_structures():
    value = {
        "dataset": "events",
        "s3": {"secret_key": "abc", "endpoint": "http://u:p@minio:9000", "region": "eu"},
        "argv": ["--password", "x", "note mentions topsecretvalue"],
        "api_key": None,
        "batch_size": 1000,
    }
    out = redact(value, secrets=("topsecretvalue",))
    assert out == {
        "dataset": "events",
        "s3": {"secret_key": MASK, "endpoint": f"http://u:{MASK}@minio:9000", "region": "eu"},
        "argv": ["--password", "x", f"note mentions {MASK}"],
        "api_key": None,
        "batch_size": 1000,
    }
    assert value["s3"]["secret_key"] == "abc"  # the input is not modified
