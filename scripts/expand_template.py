"""Expands template.yaml with the SAM translator, the transform CloudFormation itself runs on
`Transform: AWS::Serverless-2016-10-31`, into the plain CloudFormation template AWS deploys:
`python scripts/expand_template.py [TEMPLATE [OUT]]` (default template.yaml ->
.tmp/template.expanded.json).

Checks of the raw template miss what only exists after the transform (the API's routes and
permissions, the functions' roles and their references); `scripts/test` lints this output and the
Rust tests read its IAM policies.
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The functions use inline policies only; a managed policy name would need IAM to resolve
    (the real transform asks IAM), so it fails here instead."""

    def load(self):
        return {}


def expand(template):
    # `sam package` replaces each local CodeUri by the S3 object it uploaded; the transform only
    # accepts S3 locations, so stand in for that upload.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://sam-package-bucket/" + props["CodeUri"].strip("/")
    return transform(template, {}, NoManagedPolicies())


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(".tmp", "template.expanded.json")
    # The transform reads the region for ARNs it builds (the partition); any region will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    expanded = expand(template)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".partial", "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(out + ".partial", out)
    print(f"{source} -> {out}")


if __name__ == "__main__":
    main()
