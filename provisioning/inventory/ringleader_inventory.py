#!/usr/bin/env python3
"""Ansible dynamic inventory: the boards `ringleader inventory --ansible` finds on the LAN (mDNS).

    ansible-playbook -i inventory/ringleader_inventory.py site.yml

The command already prints Ansible's dynamic-inventory JSON ({"_meta": {"hostvars": ...},
"ringleader": {"hosts": [...]}, "up": ..., "draining": ...}); this script runs it, checks the
shape, and answers --list and --host the way Ansible asks. Environment:
  RINGLEADER_BIN        the ringleader command (default: `ringleader` on the PATH)
  RINGLEADER_INVENTORY_ARGS  more arguments for it, split on spaces (e.g. "--timeout 3000")
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

TIMEOUT_S = 60


def fail(message):
    sys.stderr.write(f"ringleader_inventory: {message}\n")
    sys.exit(1)


def run_inventory():
    binary = os.environ.get("RINGLEADER_BIN", "ringleader")
    argv = shlex.split(binary)
    if shutil.which(argv[0]) is None:
        fail(f"{argv[0]} is not on the PATH; install the agent or set RINGLEADER_BIN")
    argv += ["inventory", "--ansible"] + shlex.split(os.environ.get("RINGLEADER_INVENTORY_ARGS", ""))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        fail(f"`{' '.join(argv)}` did not answer within {TIMEOUT_S} s")
    if done.returncode != 0:
        fail(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[:2000]}")
    try:
        inventory = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        fail(f"`{' '.join(argv)}` did not print JSON ({err})")
    if not isinstance(inventory, dict) or not isinstance(inventory.get("_meta", {}).get("hostvars"), dict):
        fail("the inventory has no _meta.hostvars; is this ringleader new enough for --ansible?")
    for name, group in inventory.items():
        if name != "_meta" and not (isinstance(group, dict) and isinstance(group.get("hosts", []), list)):
            fail(f"group {name!r} is not {{'hosts': [...]}}")
    inventory.setdefault("ringleader", {"hosts": []})
    return inventory


def main(args):
    if len(args) == 1 and args[0] == "--list":
        json.dump(run_inventory(), sys.stdout, indent=2)
    elif len(args) == 2 and args[0] == "--host":
        json.dump(run_inventory()["_meta"]["hostvars"].get(args[1], {}), sys.stdout, indent=2)
    else:
        fail("usage: ringleader_inventory.py --list | --host <name>")
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
