"""School service: school plans, school starts and school ends of placed children."""
