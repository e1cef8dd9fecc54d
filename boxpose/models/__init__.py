"""boxpose.models"""
