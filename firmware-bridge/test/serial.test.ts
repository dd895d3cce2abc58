/**
 * The bridge on serialport's mock binding: boards found by USB id, readings in, ACKs out, and a
 * board unplugged and plugged back in. Also the sysfs fallback for listing ports without udevadm.
 */
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { SerialPortMock } from "serialport";
import { Bridge, defaultBridgeOptions } from "../src/bridge.js";
import type { Hello } from "../src/messages.js";
import { isArduino, listPorts, openSerialPort, type SerialPortLike } from "../src/serial-ports.js";
import { FakeCluster, FakeDevice, tempDir, testLogger, until } from "./support.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  SerialPortMock.binding.reset();
});

const HELLO: Hello = {
  type: "hello",
  protocol: 1,
  device: "porch",
  boot: 1,
  firmware: "mock/1",
  uptimeMs: 10,
  intervalMs: 1000,
  window: 16,
  sensors: ["t"],
};

/** Plays a board on a mock port: answers WHO with HELLO and TIME with TIME_REPLY. */
function playBoard(port: SerialPortMock, device: FakeDevice, hello: Hello): void {
  const binding = port.port!;
  const emit = (bytes: Uint8Array) => binding.emitData(Buffer.from(bytes));
  const original = binding.write.bind(binding);
  binding.write = async (buffer: Buffer) => {
    await original(buffer);
    device.hear(buffer);
    for (const m of device.take()) {
      if (m.type === "who") emit(device.frame(hello));
      if (m.type === "time")
        emit(device.frame({ type: "time-reply", boot: hello.boot, token: m.token, uptimeMs: 20 }));
      if (m.type === "ack") device.received.push(m);
    }
  };
}

describe("serial ports", () => {
  it("recognises Arduino boards and clones by USB id", () => {
    assert.ok(isArduino({ path: "/dev/ttyACM0", vendorId: "2341", productId: "0043" }));
    assert.ok(isArduino({ path: "/dev/ttyUSB0", vendorId: "1A86", productId: "7523" }));
    assert.ok(!isArduino({ path: "/dev/ttyUSB1", vendorId: "1a86", productId: "5523" }));
    assert.ok(!isArduino({ path: "/dev/ttyS0" }));
  });

  it("lists ports from sysfs when udevadm is missing", async () => {
    const tmp = tempDir("rl-sysfs-");
    cleanups.push(() => tmp.remove());
    const usb = join(tmp.dir, "devices/usb1/1-1");
    mkdirSync(join(usb, "1-1:1.0/tty/ttyACM0"), { recursive: true });
    writeFileSync(join(usb, "idVendor"), "2341\n");
    writeFileSync(join(usb, "idProduct"), "0043\n");
    const classDir = join(tmp.dir, "class");
    mkdirSync(join(classDir, "ttyACM0"), { recursive: true });
    symlinkSync(join(usb, "1-1:1.0"), join(classDir, "ttyACM0", "device"));
    mkdirSync(join(classDir, "ttyS0"));
    const failingList = () => Promise.reject(new Error("spawn udevadm ENOENT"));
    assert.deepEqual(await listPorts(failingList, classDir), [
      { path: "/dev/ttyACM0", vendorId: "2341", productId: "0043" },
    ]);
  });

  it("finds a board by USB id, writes its readings, and picks it up again after a replug", async () => {
    const tmp = tempDir("rl-mock-");
    cleanups.push(() => tmp.remove());
    SerialPortMock.binding.createPort("/dev/ttyACM7", { vendorId: "2341", productId: "0043", record: true });
    SerialPortMock.binding.createPort("/dev/ttyS0", { record: true }); // not an Arduino: left alone
    const opened: SerialPortMock[] = [];
    const cluster = new FakeCluster();
    const bridge = await Bridge.start(defaultBridgeOptions({ stateDir: tmp.dir, rescanMs: 60_000 }), {
      client: cluster,
      logger: testLogger(),
      listPorts: () => SerialPortMock.list(),
      openPort: (path, baudRate) =>
        openSerialPort(
          (o) => {
            const p = new SerialPortMock(o);
            opened.push(p);
            return p as unknown as SerialPortLike;
          },
          path,
          baudRate,
        ),
    });
    cleanups.push(() => bridge.stop());
    const device = new FakeDevice();
    await until("the port to open", () => opened.length === 1 && opened[0]!.isOpen);
    playBoard(opened[0]!, device, HELLO);
    assert.deepEqual(bridge.openPorts, ["/dev/ttyACM7"]);
    // The WHO of the first open went out before the board was played; ask again.
    opened[0]!.port!.emitData(Buffer.from(device.frame(HELLO)));
    await until("HELLO", () => bridge.session("porch") !== undefined);
    await until("the anchor", () => bridge.outbox.anchors("porch", 1).length === 1);
    opened[0]!.port!.emitData(
      Buffer.from(device.frame({ type: "reading", boot: 1, seq: 0, sensor: "t", value: 3.5, uptimeMs: 30 })),
    );
    await until("the reading", () => cluster.data.size === 1);
    await until("its ACK", () => device.received.some((m) => m.type === "ack" && m.seq === 0));

    // Unplug: the port closes under the bridge.
    opened[0]!.close();
    await until("the bridge to notice", () => bridge.openPorts.length === 0);
    // Plug back in (the next scan finds it), and the board carries on with its next reading.
    await bridge.rescan();
    await until("the port to reopen", () => opened.length === 2 && opened[1]!.isOpen);
    playBoard(opened[1]!, device, HELLO);
    opened[1]!.port!.emitData(Buffer.from(device.frame(HELLO)));
    await until("HELLO again", () => bridge.session("porch") !== undefined);
    opened[1]!.port!.emitData(
      Buffer.from(device.frame({ type: "reading", boot: 1, seq: 1, sensor: "t", value: 4, uptimeMs: 40 })),
    );
    await until("the second reading", () => cluster.data.size === 2);
    const text = await bridge.metrics.registry.metrics();
    assert.match(text, /ringleader_bridge_readings_committed_total\{path="direct"\} 2/);
    assert.match(text, /ringleader_bridge_frames_ok_total \d+/);
  });
});
