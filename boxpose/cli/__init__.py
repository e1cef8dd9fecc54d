"""boxpose.cli"""
