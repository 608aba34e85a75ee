"""The pipeline described for Argo Workflows with Hera: a projection of `modelyard.contract`.

`python -m workflows.compile` (or `modelyard compile`) writes the YAML into the Helm chart's
`files/workflows/`, its one committed copy.
"""
