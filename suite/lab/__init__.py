"""A device lab: a Ray cluster whose nodes advertise the hardware they hold.

`resources` (what a node advertises, what a job asks for) imports no Ray, so `mnv4suite lab
resources` and planning stay light; `executor` (the driver) and `node` (what runs on a node) import
Ray only when a lab run starts. Ray does placement, transport, retries and cancellation; this
package adds the mapping from backends to resources and the result bookkeeping.
"""
