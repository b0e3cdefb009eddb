"""The only code that talks to AWS: policies, grant/issue/revoke, provisioning, the sandbox."""
