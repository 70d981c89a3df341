"""Write tickets.sql: a small synthetic support-ticket table (invented for tuneline's tests and
this example; no real customer is in it). Deterministic: run it again and the file is the same.

    python examples/tickets/generate.py   # rewrites examples/tickets/tickets.sql
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

# What the help desk of an invented router, the "Lumo R2", answers; each issue has customer
# openings, the agent's reply (the knowledge to learn) and a possible follow-up exchange.
ISSUES = [
    ("reset",
     ["How do I factory reset my Lumo R2?", "My Lumo R2 is stuck, how can I reset it to factory "
      "settings?", "I forgot the admin password of my Lumo R2. Can I reset it?"],
     "Hold the recessed RESET button on the back of the Lumo R2 for 15 seconds until the ring "
     "light blinks amber, then wait about two minutes for it to restart with factory settings.",
     ("Will I lose my settings?", "Yes, a factory reset erases your Wi-Fi name, password and "
      "port forwarding rules. You can back them up first under Settings > Backup.")),
    ("firmware",
     ["How do I update the firmware on the Lumo R2?", "Is there a firmware update for my Lumo "
      "R2?", "My Lumo R2 says its firmware is out of date. What should I do?"],
     "Open the Lumo app, go to Device > Firmware and tap Update. Firmware 4.2.1 is the current "
     "release; the router restarts once and the update takes about five minutes.",
     ("Can I update from the web page instead?", "Yes, sign in at http://192.168.50.1, open "
      "Administration > Firmware and upload the file from lumo.example/firmware.")),
    ("refund",
     ["I want to return my Lumo R2 for a refund.", "Can I get my money back for the Lumo R2?",
      "What is your refund policy for the Lumo R2?"],
     "You can return the Lumo R2 within 30 days of delivery for a full refund. Start the return "
     "under Orders > Return in your account; the refund reaches your card 5 to 7 business days "
     "after we receive the router.",
     ("Do I pay for the return shipping?", "No, the return label is free within the 30 days.")),
    ("wifi_drops",
     ["My Wi-Fi keeps dropping every few minutes on the Lumo R2.", "The Lumo R2 wireless "
      "disconnects all the time.", "Why does my Lumo R2 Wi-Fi drop in the evening?"],
     "Turn off Smart Connect under Wi-Fi > Advanced and set the 5 GHz channel to 36 or 44. "
     "Evening drops usually come from neighbours on the same automatic channel.",
     ("It still drops after that.", "Then update to firmware 4.2.1, which fixes a 5 GHz "
      "disconnect bug, and send us the log from Administration > System Log.")),
    ("warranty",
     ["How long is the warranty on the Lumo R2?", "Is my Lumo R2 still under warranty?",
      "What does the Lumo R2 warranty cover?"],
     "The Lumo R2 has a two-year limited warranty from the date of purchase. It covers hardware "
     "faults, not damage from power surges or water.",
     ("How do I make a claim?", "Send your order number and a short video of the fault through "
      "Support > Warranty claim; we ship a replacement once it is approved.")),
    ("parental",
     ["How do I block websites for my kids on the Lumo R2?", "Does the Lumo R2 have parental "
      "controls?", "Can I pause the internet for one device on my Lumo R2?"],
     "Yes: in the Lumo app open Family, add a profile for each child, assign their devices and "
     "choose a filter level or a bedtime schedule. Pause stops one profile's internet at once.",
     None),
    ("mesh",
     ["Can I add a second Lumo R2 as a mesh node?", "How do I extend my network with another "
      "Lumo R2?", "Does the Lumo R2 support mesh?"],
     "Yes, up to four Lumo R2 units form a mesh. Plug in the new unit within 3 metres of the "
     "main router, open the Lumo app, tap Add node and follow the steps; it joins in about "
     "three minutes.",
     ("Where should I put the node after that?", "Halfway between the main router and the area "
      "with weak signal, off the floor and away from microwaves.")),
    ("port_forward",
     ["How do I set up port forwarding on the Lumo R2?", "I need to open a port for my game "
      "server on the Lumo R2.", "Where is port forwarding in the Lumo R2 settings?"],
     "Open Advanced > NAT > Port Forwarding, add a rule with the device, the external and "
     "internal port and the protocol (TCP, UDP or both), then save; no restart is needed.",
     None),
]
GREETINGS = ["Hi,", "Hello,", "Good morning,", "", "Hey there,"]
THANKS = ["Thanks, that worked!", "Great, thank you.", "Perfect, thanks for the help."]
FIRST = ["Anna", "Ben", "Carla", "Dev", "Eve", "Farid", "Gina", "Hugo", "Ines", "Jon"]


def tickets(seed: int = 0, n: int = 96) -> list[tuple]:
    rng = random.Random(seed)
    rows, clock = [], datetime(2026, 3, 1, 8, 0)
    for ticket in range(1, n + 1):
        _, openings, reply, follow_up = ISSUES[(ticket - 1) % len(ISSUES)]
        customer = f"C{rng.randrange(1, 41):03d}"
        name = rng.choice(FIRST)
        opening = f"{rng.choice(GREETINGS)} {rng.choice(openings)}".strip()
        if rng.random() < 0.3:  # contact details that curate must mask
            opening += (f" You can reach me at {name.lower()}{ticket}@mail.example or "
                        f"+1 415 555 {rng.randrange(1000, 9999)}.")
        clock += timedelta(minutes=rng.randrange(20, 300))
        turns = [("customer", opening)]
        if rng.random() < 0.25:
            turns.append(("customer", "Any update on this?"))
        if rng.random() < 0.3:
            turns.append(("note", "Checked the account; customer is on the current plan."))
        turns.append(("agent", reply))
        if follow_up is not None and rng.random() < 0.5:
            turns += [("customer", follow_up[0]), ("agent", follow_up[1])]
        elif rng.random() < 0.5:
            turns.append(("customer", rng.choice(THANKS)))
        for author, body in turns:
            clock += timedelta(minutes=rng.randrange(1, 90))
            rows.append((ticket, customer, clock.isoformat(sep=" "), author, body))
    rows.append((n + 1, "C041", clock.isoformat(sep=" "), "customer",
                 "Is the Lumo R2 compatible with fibre modems?"))  # never answered: skipped
    return rows


def sql(rows: list[tuple]) -> str:
    def quote(value: object) -> str:
        return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"

    values = ",\n".join("(" + ", ".join(quote(v) for v in row) + ")" for row in rows)
    return ("-- Synthetic support tickets for tuneline's tickets example (examples/tickets/"
            "generate.py).\n"
            "CREATE TABLE ticket_messages (\n  ticket_id integer NOT NULL,\n"
            "  customer_id text NOT NULL,\n  created_at timestamp NOT NULL,\n"
            "  author_type text NOT NULL,\n  body text NOT NULL\n);\n"
            f"INSERT INTO ticket_messages VALUES\n{values};\n")


if __name__ == "__main__":
    out = Path(__file__).with_name("tickets.sql")
    out.write_text(sql(tickets()), encoding="utf-8")
    print(f"wrote {out}")
