#!/usr/bin/python3
"""A DMI mapper that owes nothing to kedge: its gRPC stubs are generated at
start from KubeEdge's published proto (kubeedge/api apis/dmi/v1beta1/api.proto),
with Debian's protoc, grpc_python_plugin and python3-grpcio.

It registers with the edge's DeviceManagerService, serves
DeviceMapperService on its own socket, reports every device's properties
and state on a cycle, and counts every call it receives. The counts (and
the reports it sent) are rewritten to --counts after each change, as JSON,
for the test that drives it.

A property's reported value is its desired value when it has one (an
actuator that took the value), else a number that goes up by one per cycle.
"""
import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures


def generate(proto, out):
    src = os.path.dirname(os.path.abspath(proto))
    name = os.path.basename(proto)
    cmd = ["protoc", f"-I{src}", f"--python_out={out}", f"--grpc_out={out}",
           "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", name]
    subprocess.run(cmd, check=True)
    stem = name[:-len(".proto")].replace("-", "_")
    sys.path.insert(0, out)
    return importlib.import_module(stem + "_pb2"), importlib.import_module(stem + "_pb2_grpc")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto", required=True)
    ap.add_argument("--dmi-socket", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--protocol", default="python")
    ap.add_argument("--counts", required=True)
    ap.add_argument("--cycle-ms", type=int, default=200)
    args = ap.parse_args()

    import grpc
    gen = tempfile.mkdtemp(prefix="dmi-stubs-")
    pb, pb_grpc = generate(args.proto, gen)

    lock = threading.Lock()
    counts = {}
    devices = {}  # (namespace, name) -> Device
    models = {}
    sent = {"reports": 0, "states": 0, "report_errors": 0}

    def save():
        tmp = args.counts + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"calls": counts, "sent": sent,
                       "devices": sorted(f"{k[0]}/{k[1]}" for k in devices),
                       "models": sorted(f"{k[0]}/{k[1]}" for k in models)}, f)
        os.replace(tmp, args.counts)

    def count(rpc):
        counts[rpc] = counts.get(rpc, 0) + 1
        save()

    class Mapper(pb_grpc.DeviceMapperServiceServicer):
        def RegisterDevice(self, req, ctx):
            with lock:
                devices[(req.device.namespace or "default", req.device.name)] = req.device
                count("RegisterDevice")
            return pb.RegisterDeviceResponse(deviceName=req.device.name,
                                             deviceNamespace=req.device.namespace)

        def UpdateDevice(self, req, ctx):
            with lock:
                devices[(req.device.namespace or "default", req.device.name)] = req.device
                count("UpdateDevice")
            return pb.UpdateDeviceResponse()

        def RemoveDevice(self, req, ctx):
            with lock:
                devices.pop((req.deviceNamespace or "default", req.deviceName), None)
                count("RemoveDevice")
            return pb.RemoveDeviceResponse()

        def CreateDeviceModel(self, req, ctx):
            with lock:
                models[(req.model.namespace or "default", req.model.name)] = req.model
                count("CreateDeviceModel")
            return pb.CreateDeviceModelResponse(deviceModelName=req.model.name,
                                                deviceModelNamespace=req.model.namespace)

        def UpdateDeviceModel(self, req, ctx):
            with lock:
                models[(req.model.namespace or "default", req.model.name)] = req.model
                count("UpdateDeviceModel")
            return pb.UpdateDeviceModelResponse()

        def RemoveDeviceModel(self, req, ctx):
            with lock:
                models.pop((req.modelNamespace or "default", req.modelName), None)
                count("RemoveDeviceModel")
            return pb.RemoveDeviceModelResponse()

        def GetDevice(self, req, ctx):
            with lock:
                count("GetDevice")
                d = devices.get((req.deviceNamespace or "default", req.deviceName))
            if d is None:
                ctx.abort(grpc.StatusCode.NOT_FOUND, f"no device {req.deviceName}")
            out = pb.Device()
            out.CopyFrom(d)
            out.status.CopyFrom(status_of(d, 0))
            return pb.GetDeviceResponse(device=out)

    def status_of(d, cycle):
        st = pb.DeviceStatus(reportToCloud=True)
        for p in d.spec.properties:
            v = p.desired.value if p.desired.value else str(20 + cycle % 10)
            tw = st.twins.add(propertyName=p.name)
            tw.reported.value = v
            tw.reported.metadata["type"] = "string"
            if p.desired.value:
                tw.observedDesired.value = p.desired.value
        return st

    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_DeviceMapperServiceServicer_to_server(Mapper(), server)
    server.add_insecure_port("unix://" + args.socket)
    server.start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    edge = pb_grpc.DeviceManagerServiceStub(grpc.insecure_channel("unix://" + args.dmi_socket))
    info = pb.MapperInfo(name="stock-python-mapper", version="v1.0.0", api_version="v1beta1",
                         protocol=args.protocol, address=args.socket.encode(), state="OK")
    registered = False
    cycle = 0
    while not stop.is_set():
        if not registered:
            try:
                r = edge.MapperRegister(pb.MapperRegisterRequest(withData=True, mapper=info),
                                        timeout=3)
                with lock:
                    for d in r.deviceList:
                        devices[(d.namespace or "default", d.name)] = d
                    for m in r.modelList:
                        models[(m.namespace or "default", m.name)] = m
                    count("MapperRegister")
                registered = True
            except grpc.RpcError as e:
                print(f"register: {e.code()} {e.details()}", file=sys.stderr, flush=True)
                stop.wait(0.5)
                continue
        with lock:
            todo = list(devices.items())
        for (ns, name), d in todo:
            try:
                edge.ReportDeviceStatus(pb.ReportDeviceStatusRequest(
                    deviceName=name, deviceNamespace=ns, reportedDevice=status_of(d, cycle)),
                    timeout=3)
                edge.ReportDeviceStates(pb.ReportDeviceStatesRequest(
                    deviceName=name, deviceNamespace=ns, state="online"), timeout=3)
                with lock:
                    sent["reports"] += 1
                    sent["states"] += 1
                    save()
            except grpc.RpcError as e:
                # The edge restarted or forgot us: register again.
                print(f"report {ns}/{name}: {e.code()} {e.details()}", file=sys.stderr, flush=True)
                with lock:
                    sent["report_errors"] += 1
                    save()
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    registered = False
        cycle += 1
        stop.wait(args.cycle_ms / 1000.0)
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
