from lms_plugin.cli import main

main()
