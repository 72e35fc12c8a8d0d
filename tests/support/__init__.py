"""Helpers the tests share: plain functions and constants, never tests or fixtures.

Test modules import from here, not from each other or from a conftest, so moving a test file
never breaks another one.
"""
