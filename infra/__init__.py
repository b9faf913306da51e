"""Deployment tooling: the Lambda artifact build (build_lambda.py) and bootstrap helpers.

A package so tests can import ``infra.build_lambda``; every script here also runs as
``python infra/<script>.py``.
"""
