#!/bin/sh
# One-shot (compose service minio-init, image minio/mc): prepares MinIO for sohoa.
#  1. the bucket SOHOA_S3_BUCKET with object locking (mc mb --with-lock also turns versioning
#     on, which a lock needs), made once, with a lifecycle rule expiring old versions under work/;
#  2. the policy sohoa-writer: everything on that bucket except what would weaken the archive:
#     bypassing a governance lock, changing the bucket's lock, versioning, lifecycle or policy,
#     deleting the bucket;
#  3. sohoa's own user SOHOA_S3_ACCESS_KEY (its secret: the Docker secret s3_secret_key) with
#     that policy. sohoa never uses MinIO's administrator.
# Idempotent: compose runs it at every `up`. Shell built-ins and mc only (the mc image is minimal).
set -eu

bucket=${SOHOA_S3_BUCKET:-sohoa}
user=${SOHOA_S3_ACCESS_KEY:?SOHOA_S3_ACCESS_KEY is not set: see deploy/sohoa.env}
policy=sohoa-writer
secrets=${SECRETS_DIR:-/run/secrets}
read -r root_user < "$secrets/minio_root_user"
read -r root_password < "$secrets/minio_root_password"
read -r secret_key < "$secrets/s3_secret_key"
export MC_CONFIG_DIR=/tmp/.mc

mc alias set sohoa-minio http://minio:9000 "$root_user" "$root_password" >/dev/null
mc mb --ignore-existing --with-lock "sohoa-minio/$bucket"
# pages kept for retries (work/pages/) are deleted once their document is stored; on a versioned
# bucket that leaves non-current versions, which this rule expires (never the dossiers' objects)
case $(mc ilm rule ls "sohoa-minio/$bucket" 2>/dev/null || true) in
    *work/*) ;;
    *) mc ilm rule add --prefix "work/" --noncurrent-expire-days 7 --expire-delete-marker "sohoa-minio/$bucket" ;;
esac

cat_policy() {
    printf '%s\n' \
'{' \
'  "Version": "2012-10-17",' \
'  "Statement": [' \
'    {' \
'      "Effect": "Allow",' \
'      "Action": ["s3:*"],' \
"      \"Resource\": [\"arn:aws:s3:::$bucket\", \"arn:aws:s3:::$bucket/*\"]" \
'    },' \
'    {' \
'      "Effect": "Deny",' \
'      "Action": [' \
'        "s3:BypassGovernanceRetention",' \
'        "s3:PutBucketObjectLockConfiguration",' \
'        "s3:PutBucketVersioning",' \
'        "s3:PutLifecycleConfiguration",' \
'        "s3:PutBucketPolicy",' \
'        "s3:DeleteBucketPolicy",' \
'        "s3:DeleteBucket"' \
'      ],' \
"      \"Resource\": [\"arn:aws:s3:::$bucket\", \"arn:aws:s3:::$bucket/*\"]" \
'    }' \
'  ]' \
'}'
}
cat_policy > /tmp/sohoa-writer.json
mc admin policy create sohoa-minio "$policy" /tmp/sohoa-writer.json
mc admin user add sohoa-minio "$user" "$secret_key"
case $(mc admin user info sohoa-minio "$user") in
    *"$policy"*) ;;
    *) mc admin policy attach sohoa-minio "$policy" --user "$user" ;;
esac
echo "minio-init: bucket $bucket (object lock) and user $user ($policy) ready"
