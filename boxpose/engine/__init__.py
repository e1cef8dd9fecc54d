"""boxpose.engine"""
