import { test } from "node:test";
import assert from "node:assert/strict";
import { INVENTORY_GROUPS, buildInventory, nodesFromStatus } from "./inventory.js";

test("the Ansible inventory shape: hostvars per node id, every group present, sorted hosts", () => {
  const nodes = nodesFromStatus({
    cluster: "lab",
    clusterId: "3fa1c2d0aabbccdd",
    leader: "n2",
    members: [
      { id: "n3", peer: "10.0.0.7:7100", api: "http://10.0.0.7:7000", state: "draining" },
      { id: "n2", peer: "10.0.0.6:7100", api: "http://10.0.0.6:7000", state: "up" },
      { id: "n4", peer: "10.0.0.8:7100", api: "http://10.0.0.8:7000", state: "joining" },
    ],
  });
  const inv = buildInventory(nodes);
  for (const g of INVENTORY_GROUPS) assert.ok(inv[g], `group ${g}`);
  assert.deepEqual(inv.all, { children: ["ringleader", "ungrouped"] });
  assert.deepEqual(inv["ringleader"], { hosts: ["n2", "n3", "n4"] });
  assert.deepEqual(inv["leaders"], { hosts: ["n2"] });
  assert.deepEqual(inv["followers"], { hosts: ["n3", "n4"] });
  assert.deepEqual(inv["draining"], { hosts: ["n3"] });
  assert.deepEqual(inv["joining"], { hosts: ["n4"] });
  assert.deepEqual(inv["up"], { hosts: ["n2"] });
  assert.deepEqual(inv["new"], { hosts: [] });
  assert.deepEqual(inv._meta.hostvars["n3"], {
    ansible_host: "10.0.0.7",
    ringleader_node_id: "n3",
    ringleader_cluster: "lab",
    ringleader_cluster_id: "3fa1c2d0",
    ringleader_api_port: 7000,
    ringleader_peer_port: 7100,
    ringleader_state: "draining",
    ringleader_role: "follower",
    ringleader_version: "",
  });
});
