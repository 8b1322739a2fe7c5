"""The media bucket, its access-log bucket, and the two DynamoDB tables."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import CONTEXT_OVERRIDES, flatten

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


def media_bucket(synthesized) -> tuple[str, dict]:
    key = synthesized.logical_id(synthesized.stack.media.bucket)
    return key, synthesized.resources[key]


def test_every_bucket_is_private_encrypted_and_owner_enforced(synthesized):
    buckets = synthesized.of_type("AWS::S3::Bucket")
    assert len(buckets) == 2  # media + access logs
    for key, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, key
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", key
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_every_bucket_policy_denies_plain_http(synthesized):
    policies = synthesized.of_type("AWS::S3::BucketPolicy")
    covered = set()
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        ssl = [
            s
            for s in statements
            if s["Effect"] == "Deny"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            and s["Action"] == "s3:*"
        ]
        if ssl:
            covered.add(policy["Properties"]["Bucket"]["Ref"])
    assert covered == set(synthesized.of_type("AWS::S3::Bucket"))


def test_media_bucket_lifecycle_follows_context(template, synthesized):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Prefix": "uploads/",
                                "ExpirationInDays": CONTEXT_OVERRIDES[
                                    "mpr:uploads_expiration_days"
                                ],
                                "Status": "Enabled",
                            }
                        ),
                        Match.object_like(
                            {
                                "Prefix": "outputs/",
                                "ExpirationInDays": CONTEXT_OVERRIDES[
                                    "mpr:outputs_expiration_days"
                                ],
                                "Status": "Enabled",
                            }
                        ),
                        Match.object_like(
                            {
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                                "Status": "Enabled",
                            }
                        ),
                    ]
                )
            }
        },
    )
    _, bucket = media_bucket(synthesized)
    abort = [
        rule
        for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        if "AbortIncompleteMultipartUpload" in rule
    ]
    # The abort rule must cover the whole bucket, not a prefix.
    assert len(abort) == 1 and "Prefix" not in abort[0]


def test_media_bucket_logs_to_the_log_bucket_and_allows_browser_uploads(synthesized):
    _, bucket = media_bucket(synthesized)
    props = bucket["Properties"]
    log_bucket = synthesized.logical_id(synthesized.stack.media.access_log_bucket)
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket}
    assert "VersioningConfiguration" not in props
    (cors,) = props["CorsConfiguration"]["CorsRules"]
    assert {"PUT", "GET"} <= set(cors["AllowedMethods"])
    assert "DELETE" not in cors["AllowedMethods"]
    assert "ETag" in cors["ExposedHeaders"]


def test_job_table_keys_indexes_and_recovery(template, synthesized):
    jobs = synthesized.logical_id(synthesized.stack.tables.jobs)
    props = synthesized.resources[jobs]["Properties"]
    assert props["TableName"] == "mprtest-jobs"
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    indexes = {index["IndexName"]: index for index in props["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_status", "by_created"}
    assert indexes["by_status"]["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "created_key", "KeyType": "RANGE"},
    ]
    assert indexes["by_created"]["KeySchema"] == [
        {"AttributeName": "list_pk", "KeyType": "HASH"},
        {"AttributeName": "created_key", "KeyType": "RANGE"},
    ]
    for index in indexes.values():
        assert index["Projection"] == {"ProjectionType": "ALL"}
    attributes = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attributes == {"id": "S", "status": "S", "created_key": "S", "list_pk": "S"}


def test_idempotency_table_expires_records(synthesized):
    table = synthesized.logical_id(synthesized.stack.tables.idempotency)
    props = synthesized.resources[table]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert "GlobalSecondaryIndexes" not in props


def test_retained_data_by_default(synthesized):
    # cdk.json's removal policy is "retain": data outlives a mistaken `cdk destroy`.
    for cfn_type in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SecretsManager::Secret"):
        for key, resource in synthesized.of_type(cfn_type).items():
            assert resource.get("DeletionPolicy") == "Retain", key
    for key, table in synthesized.of_type("AWS::DynamoDB::Table").items():
        assert table["Properties"]["DeletionProtectionEnabled"] is True, key


def test_callback_secret_is_generated(synthesized):
    (secret,) = synthesized.of_type("AWS::SecretsManager::Secret").values()
    generate = secret["Properties"]["GenerateSecretString"]
    assert generate["PasswordLength"] >= 64
    assert "SecretString" not in secret["Properties"]
    assert flatten(secret["Properties"]["Description"]).startswith("Master HMAC")
