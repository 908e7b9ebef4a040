"""The AWS provider, on boto3."""
