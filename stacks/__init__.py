"""The AWS CDK app of MPR: one construct per concern, composed by ``MprStack``."""
