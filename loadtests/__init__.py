"""Locust load tests for the gateway: send-to-receive latency, throughput, concurrent streams.

Run a named scenario end to end (fresh gateway, dataset, Locust headless, summary):

    python -m loadtests.run requirement

See loadtests/README.md for every scenario and the figures measured with them.
"""
