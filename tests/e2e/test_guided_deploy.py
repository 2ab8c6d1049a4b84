"""The README's Deploy section, rehearsed: SAM CLI's own `sam deploy --guided`, answered with
the README's prompt table, against moto's CloudFormation and S3 on loopback.

SAM CLI is pointed at moto with ``AWS_ENDPOINT_URL`` and fake credentials. It gets as far as
moto allows: the managed artifact bucket (a stack of its own), the uploaded artifacts and the
application's change set, which SAM prints before asking ``Deploy this changeset? [y/N]:``.
Executing that change set is where moto stops: it has no SAM transform (the change set lists
``AWS::Serverless::*`` resources untransformed) and its IAM model rejects the result, so the
rehearsal answers that prompt with ``N``; every other answer is the README's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from local.moto_fidelity import make_moto_behave_like_aws
from local.moto_server import aws_client

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # SAM CLI's managed stack has a bucket policy, which moto's CloudFormation skips
    pytest.mark.filterwarnings("ignore:Tried to parse AWS..S3..BucketPolicy:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-tools" / "bin" / "sam"
README = ROOT / "README.md"
REGION = "eu-west-1"
STACK = "cognito-token-proxy"
TABLE = re.compile(
    r"<!-- guided-deploy-prompts: begin.*?-->\n(?P<table>.*?)\n<!-- guided-deploy-prompts: end -->",
    re.DOTALL,
)
#: A prompt as SAM CLI prints it: text, a default in brackets, a colon.
PROMPT = re.compile(r"(?:^|[\t\n])([^\t\n]*?\[[^\]\n]*\]:)")
EXECUTE_PROMPT = "Deploy this changeset? [y/N]:"
#: What SAM CLI asks about a function with an unauthenticated HttpApi event or FunctionUrlConfig;
#: the template declares its front ends with CloudFormation's own resources, which it does not.
AUTH_QUESTION = "has no authentication"


@dataclass(frozen=True)
class Answer:
    prompt: str
    typed: str  # what the user types before Enter ("" for Enter alone)


def readme_answers() -> list[Answer]:
    """The Deploy section's table: each prompt and what the user types."""
    match = TABLE.search(README.read_text(encoding="utf-8"))
    assert match, "the README has no guided-deploy-prompts table"
    answers = []
    for row in match["table"].splitlines()[2:]:
        prompt_cell, typed_cell, why = (cell.strip() for cell in row.strip("|").split(" | ", 2))
        assert why, row
        prompt = prompt_cell.strip("`")
        if typed_cell.startswith("Enter"):
            typed = ""
        else:
            typed_match = re.fullmatch(r"`([^`]*)`", typed_cell)
            assert typed_match, f"the answer must be Enter or one `value`: {row}"
            typed = typed_match[1]
        answers.append(Answer(prompt, typed))
    return answers


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server in this process (with the fidelity mends), at a localhost URL: moto finds
    the bucket of a TemplateURL in the path only for localhost or amazonaws.com hosts."""
    make_moto_behave_like_aws()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    yield f"http://localhost:{port}"
    server.stop()


def project_copy(tmp_path: Path) -> Path:
    """What a user has after cloning: the template, samconfig.toml and the functions' code."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "template.yaml", project)
    shutil.copy(ROOT / "samconfig.toml", project)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return project


def guided_deploy(
    project: Path, endpoint: str, answers: list[str]
) -> subprocess.CompletedProcess[str]:
    if not SAM.exists():
        pytest.fail("the SAM CLI is missing: run `make install` (make test does it)")
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "SAM_")) and key != "HOME"
    }
    env.update(
        HOME=str(home),
        SAM_CLI_TELEMETRY="0",
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=str(home / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
    )
    return subprocess.run(  # noqa: S603 - the repository's own SAM CLI, fixed arguments
        [str(SAM), "deploy", "--guided"],
        cwd=project,
        env=env,
        input="".join(f"{answer}\n" for answer in answers),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def prompts_in(stdout: str) -> list[str]:
    return [match.strip() for match in PROMPT.findall(stdout)]


def test_the_readmes_answers_take_sam_deploy_guided_to_the_change_set(
    tmp_path: Path, moto_endpoint: str
) -> None:
    # GIVEN a fresh copy of the project and the README's answers, prompt by prompt
    answers = readme_answers()
    typed = {answer.prompt: answer.typed for answer in answers}
    assert typed[EXECUTE_PROMPT] == "y"
    project = project_copy(tmp_path)

    # WHEN a user runs `sam deploy --guided` and types them (N at the last prompt: moto cannot
    # execute the change set)
    inputs = ["N" if a.prompt == EXECUTE_PROMPT else a.typed for a in answers]
    result = guided_deploy(project, moto_endpoint, inputs)

    # THEN SAM asked exactly the README's prompts, in the README's order
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert prompts_in(result.stdout) == [answer.prompt for answer in answers]
    # AND it asked nothing about authentication (the token endpoint is public by design, and
    # the README says why), created its artifact bucket, uploaded the code and the template,
    # and created the application's change set with the README's values
    assert AUTH_QUESTION not in result.stdout
    assert "Security Constraints Not Satisfied" not in result.stdout + result.stderr
    assert "Changeset created successfully." in result.stdout
    cfn = aws_client("cloudformation", moto_endpoint, REGION)
    (stack,) = cfn.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "REVIEW_IN_PROGRESS"
    (change_set_id,) = [
        summary["ChangeSetId"]
        for summary in cfn.list_change_sets(StackName=STACK)["Summaries"]
        if summary["StackName"] == STACK  # moto lists every stack's change sets
    ]
    change_set = cfn.describe_change_set(ChangeSetName=change_set_id)
    assert change_set["Status"] == "CREATE_COMPLETE"
    assert change_set["ExecutionStatus"] == "AVAILABLE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in change_set["Parameters"]}
    assert parameters["CognitoDomain"] == typed["Parameter CognitoDomain []:"]
    assert parameters["UserPoolId"] == typed["Parameter UserPoolId []:"]
    assert parameters["OriginRuleAction"] == "Count"
    assert parameters["OriginRuleCoverage"] == "ClientCredentials"
    assert parameters["Frontend"] == "HttpApi"
    assert parameters["CustomDomainName"] == ""
    changed = {c["ResourceChange"]["LogicalResourceId"] for c in change_set["Changes"]}
    assert {"OriginWebAcl", "OriginWebAclAssociation", "OriginSecretRotation"} <= changed
    managed = cfn.describe_stacks(StackName="aws-sam-cli-managed-default")["Stacks"][0]
    bucket = next(o["OutputValue"] for o in managed["Outputs"] if o["OutputKey"] == "SourceBucket")
    keys = [
        o["Key"]
        for o in aws_client("s3", moto_endpoint, REGION).list_objects_v2(Bucket=bucket)["Contents"]
    ]
    assert any(key.endswith(".template") for key in keys)
    assert len(keys) >= 2  # the template and the functions' code
    # AND the answers were saved, so a later `sam deploy` asks nothing but the change set
    saved = tomllib.loads((project / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = saved["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert 'UserPoolId="' + typed["Parameter UserPoolId []:"] in deploy["parameter_overrides"]
    assert 'OriginRuleAction="Count"' in deploy["parameter_overrides"]
