"""Makes wallets and API keys directly in the real gateway's SQLite files, the way the gateway's own
scripts/generate_audit_keys.py does: through its UsageTracker (wallet.create, no signup bonus) and its
KeyManager (create_key with tier and scopes). A key made this way gets no identity and no reputation row,
because the gateway's on_key_created hook lives only in the running server.

Runs inside the gateway's root file system (scripts/gateway/run-in-rootfs.sh), with the gateway's source
as the working directory and A2A_DATA_DIR set. Reads a JSON request on stdin:
  {"wallets": [{"agent_id": "...", "balance": "1000.00"}], "keys": [{"agent_id": "...", "tier": "pro",
   "scopes": ["read", "write"]}]}
and writes {"keys": [{"agent_id", "tier", "scopes", "key"}]} (in request order) on stdout.
"""

import asyncio
import json
import os
import sys


async def main() -> None:
    request = json.load(sys.stdin)
    data_dir = os.environ["A2A_DATA_DIR"]
    sys.path.insert(0, os.getcwd())

    import gateway.src.bootstrap  # noqa: F401  (registers billing_src / paywall_src, as the gateway's script does)
    from billing_src.tracker import UsageTracker
    from paywall_src.keys import KeyManager
    from paywall_src.storage import PaywallStorage

    storage = PaywallStorage(f"sqlite:///{data_dir}/paywall.db")
    await storage.connect()
    tracker = UsageTracker(f"sqlite:///{data_dir}/billing.db")
    await tracker.connect()
    try:
        for w in request.get("wallets", []):
            await tracker.wallet.create(w["agent_id"], initial_balance=float(w["balance"]), signup_bonus=False)
        keys = []
        for k in request.get("keys", []):
            info = await KeyManager(storage).create_key(k["agent_id"], tier=k["tier"], scopes=k["scopes"])
            keys.append({"agent_id": k["agent_id"], "tier": k["tier"], "scopes": k["scopes"], "key": info["key"]})
    finally:
        await storage.close()
        await tracker.close()
    json.dump({"keys": keys}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
