"""boxpose.viz"""
