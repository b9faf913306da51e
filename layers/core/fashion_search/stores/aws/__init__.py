"""AWS adapters (DynamoDB catalog, S3 blobs, Secrets Manager): production, in the Lambdas.

Also ``errors``: botocore's errors mapped to the project's named errors (``fashion_search.errors``).
"""
