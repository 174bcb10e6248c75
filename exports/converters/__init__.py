"""Pure format converters: tasks in Label Studio's export shape in, another export format out (no ORM)."""
