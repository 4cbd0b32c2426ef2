"""Create the media bucket on an S3-compatible store (SeaweedFS) the way Evidence Locker expects:
Object Lock on (which turns versioning on for good), and the least-privilege bucket policy of
docs/storage-permissions.md (deploy/seaweedfs/bucket-policy.json, BUCKET replaced).

Run once, with the ADMIN identity, which no Evidence Locker process holds:

    S3_ENDPOINT_URL=https://s3.internal:8333 S3_BUCKET=evidence-media \
    S3_ADMIN_ACCESS_KEY_ID=... S3_ADMIN_SECRET_ACCESS_KEY=... \
        python deploy/seaweedfs/create_bucket.py

Idempotent: an existing bucket is checked (Object Lock must be on) and gets the policy again.
For AWS S3 follow docs/storage-permissions.md instead (bucket, IAM roles, KMS, lifecycle rules).
Needs boto3 (a dependency of evidence-locker).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent


def main() -> int:
    endpoint = os.environ["S3_ENDPOINT_URL"]
    bucket = os.environ.get("S3_BUCKET", "evidence-media")
    region = os.environ.get("S3_REGION", "us-east-1")
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=os.environ["S3_ADMIN_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["S3_ADMIN_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}))
    try:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        print(f"created bucket {bucket} with Object Lock")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",
                                                             "BucketAlreadyExists"):
            raise
        print(f"bucket {bucket} exists")
    lock = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    if lock.get("ObjectLockEnabled") != "Enabled":
        print(f"bucket {bucket} has no Object Lock: it cannot hold evidence; make a new bucket",
              file=sys.stderr)
        return 1
    versioning = client.get_bucket_versioning(Bucket=bucket).get("Status")
    policy = (HERE / "bucket-policy.json").read_text().replace("BUCKET", bucket)
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(json.loads(policy)))
    print(f"bucket {bucket}: Object Lock Enabled, versioning {versioning}, policy applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
