#!/usr/bin/env bash
# Build the UI image, push it to ECR and deploy infra/streamlit/ecs-service.yaml (Fargate + an
# HTTPS ALB that signs users in with Cognito, sticky sessions). Run from anywhere; needs docker (with BuildKit) and the AWS CLI.
#
# Required environment:
#   AWS_REGION            e.g. us-east-1
#   VPC_ID                vpc-...
#   SUBNET_IDS            two or more public subnets, comma-separated: subnet-a,subnet-b
#   API_URL               the API's base URL (SAM output ApiUrl)
#   API_KEY_SECRET_ARN    Secrets Manager secret holding one API key (SecretString = the key)
#   CERTIFICATE_ARN       ACM certificate for DOMAIN_NAME (the ALB serves HTTPS only)
#   DOMAIN_NAME           the UI's host name, e.g. search.example.com (point it at the ALB)
#   COGNITO_DOMAIN_PREFIX prefix of the hosted sign-in page (unique in the region)
# Optional:
#   STACK_NAME (fashion-search-ui)  REPOSITORY (fashion-search-ui)  IMAGE_TAG (git short sha)
#   DESIRED_COUNT (1)  ALLOWED_CIDR (0.0.0.0/0)
#   DRY_RUN=1   print the commands instead of running them
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"

: "${AWS_REGION:?set AWS_REGION}"
: "${VPC_ID:?set VPC_ID}"
: "${SUBNET_IDS:?set SUBNET_IDS (comma-separated public subnets)}"
: "${API_URL:?set API_URL (the API base URL)}"
: "${API_KEY_SECRET_ARN:?set API_KEY_SECRET_ARN (Secrets Manager secret with one API key)}"
: "${CERTIFICATE_ARN:?set CERTIFICATE_ARN (ACM certificate for DOMAIN_NAME)}"
: "${DOMAIN_NAME:?set DOMAIN_NAME (the UI host name the certificate covers)}"
: "${COGNITO_DOMAIN_PREFIX:?set COGNITO_DOMAIN_PREFIX (hosted sign-in page prefix)}"
STACK_NAME="${STACK_NAME:-fashion-search-ui}"
REPOSITORY="${REPOSITORY:-fashion-search-ui}"
IMAGE_TAG="${IMAGE_TAG:-$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || date +%Y%m%d%H%M%S)}"
DESIRED_COUNT="${DESIRED_COUNT:-1}"
ALLOWED_CIDR="${ALLOWED_CIDR:-0.0.0.0/0}"

run() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  account="${AWS_ACCOUNT_ID:-123456789012}"
else
  account="$(aws sts get-caller-identity --query Account --output text)"
fi
registry="${account}.dkr.ecr.${AWS_REGION}.amazonaws.com"
image="${registry}/${REPOSITORY}:${IMAGE_TAG}"

# 1. The repository (once), with scan on push.
if [[ "${DRY_RUN:-0}" == "1" ]] || ! aws ecr describe-repositories --region "$AWS_REGION" \
    --repository-names "$REPOSITORY" >/dev/null 2>&1; then
  run aws ecr create-repository --region "$AWS_REGION" --repository-name "$REPOSITORY" \
    --image-scanning-configuration scanOnPush=true
fi

# 2. Build (the context is the repository; Dockerfile.dockerignore keeps it to streamlit_app/)
#    and push. linux/amd64 matches the task definition's CpuArchitecture.
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  echo "+ aws ecr get-login-password --region $AWS_REGION | docker login --username AWS --password-stdin $registry"
else
  aws ecr get-login-password --region "$AWS_REGION" \
    | docker login --username AWS --password-stdin "$registry"
fi
run env DOCKER_BUILDKIT=1 docker build --platform linux/amd64 \
  -f "$here/Dockerfile" -t "$image" "$repo_root"
run docker push "$image"

# 3. The service. The key never appears here: the task reads it from the secret at start.
run aws cloudformation deploy --region "$AWS_REGION" \
  --stack-name "$STACK_NAME" \
  --template-file "$here/ecs-service.yaml" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides \
    "ImageUri=$image" \
    "VpcId=$VPC_ID" \
    "PublicSubnetIds=$SUBNET_IDS" \
    "ApiUrl=$API_URL" \
    "ApiKeySecretArn=$API_KEY_SECRET_ARN" \
    "CertificateArn=$CERTIFICATE_ARN" \
    "DomainName=$DOMAIN_NAME" \
    "CognitoDomainPrefix=$COGNITO_DOMAIN_PREFIX" \
    "DesiredCount=$DESIRED_COUNT" \
    "AllowedCidr=$ALLOWED_CIDR"

# Where DOMAIN_NAME must point, the URL, and the user pool to invite users into.
run aws cloudformation describe-stacks --region "$AWS_REGION" --stack-name "$STACK_NAME" \
  --query "Stacks[0].Outputs[?contains(['LoadBalancerDns','UiUrl','UserPoolId'], OutputKey)].[OutputKey,OutputValue]" \
  --output text
