#!/usr/bin/python3
"""A real RTSP server for tests and demos: GStreamer's RTSP server (GstRtspServer) serving
live H.264 test patterns on one or more mount points.

Run it with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-{base,good,ugly}); a pyenv python usually lacks the `gi` bindings.

    /usr/bin/python3 tools/rtsp_server.py --port 8554 --mounts cam1,cam2

serves rtsp://127.0.0.1:8554/cam1 and rtsp://127.0.0.1:8554/cam2, each a
`videotestsrc is-live=true pattern=<p> ! video/x-raw,width=W,height=H,framerate=F/1 !
x264enc tune=zerolatency speed-preset=ultrafast key-int-max=F ! rtph264pay name=pay0 pt=96`
pipeline (a different pattern per mount), and prints one line

    READY rtsp://127.0.0.1:8554 cam1,cam2

on stdout once the socket listens. With --user and --password, clients must
authenticate (RTSP basic auth). SIGTERM or SIGINT stops it; exit status 2 means the port
could not be bound.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PATTERNS = ["smpte", "ball", "snow", "checkers-8", "circular", "pinwheel"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8554, help="TCP port (8554)")
    p.add_argument("--mounts", default="cam1", help="comma-separated mount names (cam1)")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--user", help="require RTSP basic auth with this user")
    p.add_argument("--password", help="... and this password")
    args = p.parse_args(argv)
    args.mounts = [m.strip().strip("/") for m in args.mounts.split(",") if m.strip().strip("/")]
    if not args.mounts:
        p.error("--mounts names no mount point")
    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    return args


def launch_line(pattern, width, height, fps):
    return (
        f"( videotestsrc is-live=true pattern={pattern} "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        f"! rtph264pay name=pay0 pt=96 )"
    )


def main(argv):
    args = parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)

    mounts = server.get_mount_points()
    for i, name in enumerate(args.mounts):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(PATTERNS[i % len(PATTERNS)], args.width, args.height, args.fps))
        factory.set_shared(True)  # one encoder per mount, however many clients
        if args.user is not None:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role("user", "media.factory.access", True)
            permissions.add_permission_for_role("user", "media.factory.construct", True)
            factory.set_permissions(permissions)
        mounts.add_factory("/" + name, factory)

    try:
        source_id = server.attach(None)
    except GLib.Error as e:
        print(f"Cannot listen on {args.host}:{args.port}: {e.message}", file=sys.stderr, flush=True)
        return 2
    if source_id == 0:
        print(f"Cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 2

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.host}:{args.port} {','.join(args.mounts)}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
