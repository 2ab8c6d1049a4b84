"""moto's conditional writes race without the fidelity patch; with it, one writer wins."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.moto_fidelity import make_dynamodb_writes_atomic


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
