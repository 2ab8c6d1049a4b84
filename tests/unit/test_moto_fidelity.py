"""moto's conditional writes race without the fidelity patch; with it, one writer wins."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.moto_fidelity import make_dynamodb_writes_atomic
from tests.conftest import REGION


def test_patch_is_idempotent() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    make_dynamodb_writes_atomic()
    first = DynamoDBBackend.update_item
    make_dynamodb_writes_atomic()
    assert DynamoDBBackend.update_item is first


@pytest.mark.parametrize("round_", range(5))
def test_one_conditional_writer_wins_a_race(token_table: Any, round_: int) -> None:
    # GIVEN 40 threads racing to create the same item with a condition
    barrier = threading.Barrier(40)
    winners: list[int] = []

    def race(n: int) -> None:
        barrier.wait()
        try:
            token_table.update_item(
                Key={"pk": f"race-{round_}"},
                UpdateExpression="SET lease_owner = :o",
                ConditionExpression="attribute_not_exists(lease_owner)",
                ExpressionAttributeValues={":o": f"o{n}"},
            )
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        else:
            winners.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # THEN exactly one passed its condition, as on DynamoDB
    assert len(winners) == 1


def test_a_read_without_a_stage_answers_awscurrent_after_a_stage_move(aws: None) -> None:
    # GIVEN a secret whose AWSCURRENT moved to a new version
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="origin", SecretString="old-value")["ARN"]
    old = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    (old_version,) = old
    sm.put_secret_value(
        SecretId=arn,
        SecretString="new-value",
        ClientRequestToken="v2" * 16,
        VersionStages=["AWSPENDING"],
    )
    sm.update_secret_version_stage(
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId="v2" * 16,
        RemoveFromVersionId=old_version,
    )

    # WHEN the value is read without a stage, as AWS clients usually do
    value = sm.get_secret_value(SecretId=arn)["SecretString"]

    # THEN it is AWSCURRENT's, as AWS answers
    assert value == "new-value"


def test_a_stack_created_through_a_change_set_reports_its_outputs(aws: None) -> None:
    # GIVEN a template with an output, created the way SAM CLI creates its managed stack
    template = (
        '{"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}},'
        ' "Outputs": {"BucketName": {"Value": {"Ref": "Bucket"}}}}'
    )
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_change_set(
        StackName="managed",
        TemplateBody=template,
        ChangeSetName="InitialCreation",
        ChangeSetType="CREATE",
    )

    # WHEN the change set is executed
    cfn.execute_change_set(ChangeSetName="InitialCreation", StackName="managed")

    # THEN DescribeStacks reports the output, as AWS does
    (stack,) = cfn.describe_stacks(StackName="managed")["Stacks"]
    (output,) = stack["Outputs"]
    bucket = cfn.describe_stack_resource(StackName="managed", LogicalResourceId="Bucket")
    assert output["OutputKey"] == "BucketName"
    assert output["OutputValue"] == bucket["StackResourceDetail"]["PhysicalResourceId"]
