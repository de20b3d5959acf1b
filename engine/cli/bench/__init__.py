"""`palisade bench`: scenarios, the open-loop load generator, the server it drives, the report and gate."""
