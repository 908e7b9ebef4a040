"""The AWS provider, on boto3: ``KUBERNETES_PROVIDER=aws kube-up``.

Credentials, profile and endpoint come from boto3's own configuration (``AWS_PROFILE``,
``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL`` to aim at moto); the region follows ``ZONE``.

Modules: :mod:`aws.provider` (the :class:`cluster.provider.Provider`), :mod:`aws.network`,
:mod:`aws.iam`, :mod:`aws.staging`, :mod:`aws.master`, :mod:`aws.nodes` (one concern each),
:mod:`aws.teardown` (kube-down), :mod:`aws.resources` (names, tags and request bodies, pure),
:mod:`aws.calls` (retries and one-line errors), :mod:`aws.console` (host keys).
"""
